import CRIAPI
import XCTest

/// The generated CRI messages round-trip through the protobuf wire format.
final class GeneratedAPITests: XCTestCase {
    func testVersionResponseRoundTrip() throws {
        var v = Runtime_V1_VersionResponse()
        v.version = "0.1.0"
        v.runtimeName = "moat"
        v.runtimeVersion = "1"
        v.runtimeApiVersion = "v1"
        let bytes: [UInt8] = try v.serializedBytes()
        let back = try Runtime_V1_VersionResponse(serializedBytes: bytes)
        XCTAssertEqual(back, v)
    }
}
