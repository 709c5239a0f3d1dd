import Foundation
import XCTest
@testable import ControlPlane

/// The hand-written JSON reader/writer agrees with Foundation's.
final class JSONCodecTests: XCTestCase {
    func testRoundTripsAndMatchesFoundation() throws {
        let text = #"{"a":[1,-2,3.5,1e3,-0.25,true,false,null],"b":{"z":"q\"uo\\te\n\t\u0001/é😀","y":{}},"c":[],"": "", "n": 12345678901234}"#
        let ours = try JSON.parse(text)
        let theirs = try JSONSerialization.jsonObject(with: Data(text.utf8)) as! NSDictionary
        XCTAssertEqual(ours["b"]["z"].string, (theirs["b"] as? NSDictionary)?["z"] as? String)
        XCTAssertEqual(ours["a"], [1, -2, 3.5, 1000, -0.25, true, false, nil])
        XCTAssertEqual(ours["n"], .int(12345678901234))
        // Written form: sorted keys, escapes, then read back to the same value.
        let written = ours.serialized()
        XCTAssertEqual(try JSON.parse(written), ours)
        let back = try JSONSerialization.jsonObject(with: written) as! NSDictionary
        XCTAssertEqual((back["b"] as? NSDictionary)?["z"] as? String, "q\"uo\\te\n\t\u{1}/é😀")
        XCTAssertTrue(String(decoding: written, as: UTF8.self).hasPrefix(#"{"":"","a":[1,-2,3.5,1000,-0.25,true,false,null],"b":{"y":{},"z":"q\"uo\\te\n\t\u0001/é😀"}"#),
                      String(decoding: written, as: UTF8.self))
        XCTAssertEqual(try JSON.parse(#"["\ud83d\ude00"]"#), ["😀"])
    }

    func testRejectsMalformedInput() {
        for bad in ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"abc", "[1] x", "{\"a\":01x}", "\"a\u{1}\""] {
            XCTAssertThrowsError(try JSON.parse(bad), bad)
        }
    }

    func testTimestampFormat() {
        XCTAssertEqual(Timestamp.string(Date(timeIntervalSince1970: 1_700_000_000.7)), "2023-11-14T22:13:20Z")
        XCTAssertEqual(Timestamp.parse("2023-11-14T22:13:20Z"), Date(timeIntervalSince1970: 1_700_000_000))
    }
}
