import XCTest

final class NodeAgentPlaceholderTests: XCTestCase {
    func testModuleLinks() { XCTAssertTrue(true) }
}
