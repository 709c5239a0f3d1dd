import Images
import XCTest

final class ImageConfigTests: XCTestCase {
    func testDefaultConfigIsEmpty() {
        let c = ImageConfig()
        XCTAssertTrue(c.env.isEmpty && c.cmd.isEmpty && c.entrypoint.isEmpty)
        XCTAssertEqual(c, ImageConfig())
    }
}
