// The API server's confinement (Sandbox/DaemonConfinement.swift) decides,
// before the command line is parsed, whether to keep CAP_NET_BIND_SERVICE:
// it looks for --listen and --dns-listen in argv itself. These tests tie
// that reading to the flags the commands really parse, so renaming either
// flag, or changing what its value looks like, fails here instead of
// leaving the server unable to bind a port below 1024.

import ControlPlane
@testable import Sandbox
import XCTest

final class ConfinementFlagsTests: XCTestCase {
    func testLowListenPortKeepsBindServiceAndTheFlagParses() throws {
        for argv in [["--listen", "0.0.0.0:443"], ["--listen=127.0.0.1:80"]] {
            let cmd = try APIServerCommand.parse(argv)
            XCTAssertTrue(cmd.options.listen.hasSuffix(":443") || cmd.options.listen.hasSuffix(":80"), "\(argv) parsed as \(cmd.options.listen)")
            XCTAssertEqual(DaemonConfinement.apiServerCapabilities(["moat", "apiserver"] + argv), ["CAP_NET_BIND_SERVICE"], "\(argv)")
        }
    }

    func testLowDNSPortKeepsBindServiceAndTheFlagParses() throws {
        let argv = ["--listen", "127.0.0.1:6443", "--dns-listen", "10.96.0.10:53"]
        let cmd = try ControlPlaneCommand.parse(argv)
        XCTAssertEqual(cmd.dnsListen, "10.96.0.10:53")
        XCTAssertEqual(cmd.options.listen, "127.0.0.1:6443")
        XCTAssertEqual(DaemonConfinement.apiServerCapabilities(["moat", "controlplane"] + argv), ["CAP_NET_BIND_SERVICE"])
    }

    func testHighPortsKeepNothing() throws {
        let argv = ["--listen", "127.0.0.1:6443", "--dns-listen", "127.0.0.1:5353"]
        _ = try ControlPlaneCommand.parse(argv)
        XCTAssertEqual(DaemonConfinement.apiServerCapabilities(["moat", "controlplane"] + argv), [])
        XCTAssertEqual(DaemonConfinement.apiServerCapabilities(["moat", "apiserver"]), [], "the default 127.0.0.1:6443")
    }
}
