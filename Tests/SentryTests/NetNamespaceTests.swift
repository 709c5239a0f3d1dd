import Glibc
import XCTest
@testable import Sentry

/// The parts of Kernel/NetNamespaces.swift and FSImpl/LoopbackSocket.swift
/// that need no task: which bound address receives for which destination,
/// the sockaddr layouts, ephemeral ports, lo's netlink view. fs/156 and
/// fs/157 check the rest against Linux.
final class NetNamespaceTests: XCTestCase {
    private let v4Any = LoopbackSockFD.v4Any, v6Any = LoopbackSockFD.v6Any
    private let lo4 = LoopbackSockFD.v4Loopback, lo6 = LoopbackSockFD.v6Loopback

    func testWildcardsReceive() {
        XCTAssertTrue(LoopbackSockFD.receives(v4Any, v6only: false, lo4))
        XCTAssertFalse(LoopbackSockFD.receives(v4Any, v6only: false, lo6))
        XCTAssertTrue(LoopbackSockFD.receives(v6Any, v6only: false, lo4))      // a dual-stack listener
        XCTAssertFalse(LoopbackSockFD.receives(v6Any, v6only: true, lo4))      // IPV6_V6ONLY
        XCTAssertTrue(LoopbackSockFD.receives(v6Any, v6only: true, lo6))
        XCTAssertTrue(LoopbackSockFD.receives(lo4, v6only: false, lo4))
        XCTAssertFalse(LoopbackSockFD.receives(lo4, v6only: false, lo6))
    }

    func testLoopbackAddresses() {
        var a = lo4; a[12] = 127; a[15] = 9                                     // 127.0.0.9
        XCTAssertTrue(LoopbackSockFD.isLoopback(a))
        XCTAssertTrue(LoopbackSockFD.isLoopback(lo6))
        var far = lo4; far[12] = 10
        XCTAssertFalse(LoopbackSockFD.isLoopback(far))
        XCTAssertTrue(LoopbackSockFD.isAny(v4Any) && LoopbackSockFD.isAny(v6Any))
    }

    func testSockaddrLayouts() {
        let a = LoopbackSockFD.Addr(ip: lo4, port: 0x1234)
        XCTAssertEqual(LoopbackSockFD.sockaddr(AF_INET, a), [2, 0, 0x12, 0x34, 127, 0, 0, 1] + [UInt8](repeating: 0, count: 8))
        let b = LoopbackSockFD.sockaddr(AF_INET6, a)                          // a v4 peer seen by a v6 socket: v4-mapped
        XCTAssertEqual(b.count, 28)
        XCTAssertEqual(Array(b[0..<4]), [10, 0, 0x12, 0x34])
        XCTAssertEqual(Array(b[8..<24]), lo4)
    }

    func testEphemeralPortsAndLo() {
        let ns = NetNamespace(owner: .root)
        XCTAssertFalse(ns.isRoot)
        XCTAssertNotEqual(ns.unixKey, NetNamespace.root.unixKey)
        let p = ns.ephemeralPort(proto: 6)
        XCTAssertNotNil(p)
        XCTAssertTrue(NetNamespace.ephemeral.contains(p!))
        XCTAssertEqual(ns.links().map { $0.name }, [Array("lo".utf8)])
        XCTAssertEqual(ns.links()[0].flags & UInt32(IFF_UP), 0)
        XCTAssertTrue(ns.addresses(AF_INET).isEmpty)
        ns.setLoUp(true)
        XCTAssertNotEqual(ns.links()[0].flags & UInt32(IFF_UP), 0)
        XCTAssertEqual(ns.addresses(AF_INET).map { $0.addr }, [[127, 0, 0, 1]])
        XCTAssertEqual(ns.addresses(AF_INET6).map { $0.prefix }, [128])
    }
}
