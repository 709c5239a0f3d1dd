import Glibc
import XCTest
@testable import Sentry

/// The parts of Kernel/NetNamespaces.swift and FSImpl/LoopbackSocket.swift
/// that need no task: which bound address receives for which destination,
/// the sockaddr layouts, ephemeral ports, lo's netlink view, addresses and
/// routes. fs/156, fs/157 and fs/135 check the rest against Linux.
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
        XCTAssertTrue(ns.portRange.contains(p!))
        XCTAssertEqual(ns.links().map { $0.name }, [Array("lo".utf8)])
        XCTAssertEqual(ns.links()[0].flags & UInt32(IFF_UP), 0)
        XCTAssertTrue(ns.addresses(AF_INET).isEmpty)
        ns.setLinkUp(ns.lo, true)
        XCTAssertNotEqual(ns.links()[0].flags & UInt32(IFF_UP), 0)
        XCTAssertEqual(ns.addresses(AF_INET).map { $0.addr }, [[127, 0, 0, 1]])
        XCTAssertEqual(ns.addresses(AF_INET6).map { $0.prefix }, [128])
        ns.portRange = 40000...40000
        XCTAssertEqual(ns.ephemeralPort(proto: 17), 40000)
    }

    /// RTM_NEWADDR of 10.0.0.1/24 on lo (struct ifaddrmsg, then IFA_LOCAL):
    /// the address and its subnet are local, its own address sends, a
    /// second add is EEXIST, RTM_DELADDR removes it.
    func testAddressesOnLo() {
        let ns = NetNamespace(owner: .root)
        ns.setLinkUp(ns.lo, true)
        var msg = [UInt8](repeating: 0, count: 24)
        msg[16] = UInt8(AF_INET); msg[17] = 24; msg[20] = 1
        msg += [8, 0, 2, 0, 10, 0, 0, 1]
        XCTAssertEqual(ns.changeAddress(msg, type: 20, flags: 0x600), 0)
        XCTAssertEqual(ns.changeAddress(msg, type: 20, flags: 0x600), EEXIST)
        var ip = lo4; ip[12] = 10; ip[13] = 0; ip[14] = 0; ip[15] = 77
        XCTAssertTrue(ns.isLocal(ip))
        if case .success(let r) = ns.route(ip) { XCTAssertTrue(r.ns === ns); XCTAssertEqual(Array(r.source[12..<16]), [10, 0, 0, 1]) } else { XCTFail() }
        var far = lo4; far[12] = 10; far[14] = 1
        XCTAssertFalse(ns.isLocal(far))
        if case .failure(let e) = ns.route(far) { XCTAssertEqual(e.code, ENETUNREACH) } else { XCTFail() }
        XCTAssertEqual(ns.addresses(AF_INET).map { $0.addr }, [[127, 0, 0, 1], [10, 0, 0, 1]])
        XCTAssertEqual(ns.changeAddress(msg, type: 21, flags: 0), 0)
        XCTAssertEqual(ns.changeAddress(msg, type: 21, flags: 0), EADDRNOTAVAIL)
        XCTAssertFalse(ns.isLocal(ip))
    }
}
