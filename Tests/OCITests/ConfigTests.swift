// config.json decoding: every malformed or invalid field is rejected with an
// error that names its JSON path; valid documents decode completely.

import XCTest
@testable import OCI

final class ConfigTests: XCTestCase {
    let minimal = """
    {"ociVersion": "1.0.2", "root": {"path": "rootfs"}, "process": {"cwd": "/", "args": ["sh"]}}
    """

    /// The error for `json`, as `moat create` prints it.
    func error(_ json: String) -> String? {
        do { _ = try Spec.decode(json); return nil } catch { return "\(error)" }
    }

    /// Patches `minimal` with a JSON fragment merged at the top level.
    func with(_ fragment: String) -> String {
        let base = try! JSON.parse(minimal)
        let extra = try! JSON.parse(fragment)
        guard case .object(var kv) = base, case .object(let add) = extra else { fatalError() }
        for (k, v) in add {
            if let i = kv.firstIndex(where: { $0.0 == k }) { kv[i].1 = v } else { kv.append((k, v)) }
        }
        return JSON.object(kv).serialized()
    }

    func testMinimalDecodes() throws {
        let s = try Spec.decode(minimal)
        XCTAssertEqual(s.process?.args, ["sh"])
        XCTAssertEqual(s.root?.path, "rootfs")
        XCTAssertEqual(s.process?.user.uid, 0)
    }

    func testSyntaxErrorsNamePosition() {
        XCTAssertEqual(error("{\"ociVersion\": }"), "config.json: invalid JSON: unexpected character at line 1, column 16")
        XCTAssertEqual(error("{\"a\": 1} x"), "config.json: invalid JSON: unexpected data after the document at line 1, column 10")
        XCTAssertNotNil(error("[1,]"))
        XCTAssertNotNil(error("{\"a\": 01}"))
    }

    func testTypeErrorsNamePath() {
        let cases: [(String, String)] = [
            (#"{"process": {"cwd": "/", "args": ["sh"], "user": {"uid": -1, "gid": 0}}}"#,
             "config.json: process.user.uid: expected an unsigned integer (32-bit)"),
            (#"{"process": {"cwd": "/", "args": ["sh"], "user": {"uid": "0", "gid": 0}}}"#,
             "config.json: process.user.uid: expected an unsigned integer"),
            (#"{"process": {"cwd": "/", "args": ["sh"], "user": {"uid": 1.5, "gid": 0}}}"#,
             "config.json: process.user.uid: expected an unsigned integer"),
            (#"{"process": {"cwd": "/", "args": ["sh"], "user": {"uid": 4294967296, "gid": 0}}}"#,
             "config.json: process.user.uid: expected an unsigned integer (32-bit)"),
            (#"{"process": {"cwd": "/", "args": ["sh"], "user": {"uid": 0}}}"#,
             "config.json: process.user.gid: required property is missing"),
            (#"{"process": {"cwd": "/", "args": "sh"}}"#, "config.json: process.args: expected an array"),
            (#"{"process": {"cwd": "/", "args": ["sh", 3]}}"#, "config.json: process.args[1]: expected a string"),
            (#"{"process": {"args": ["sh"]}}"#, "config.json: process.cwd: required property is missing"),
            (#"{"process": {"cwd": "tmp", "args": ["sh"]}}"#, "config.json: process.cwd: must be an absolute path, got \"tmp\""),
            (#"{"process": {"cwd": "/", "args": ["sh"], "env": ["NOEQUALS"]}}"#, "config.json: process.env[0]: expected KEY=VALUE, got \"NOEQUALS\""),
            (#"{"process": {"cwd": "/", "args": ["sh"], "rlimits": [{"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}]}}"#,
             "config.json: process.rlimits[0].type: invalid value \"RLIMIT_BOGUS\" (expected one of RLIMIT_CPU, RLIMIT_FSIZE, RLIMIT_DATA, RLIMIT_STACK, RLIMIT_CORE, RLIMIT_RSS, RLIMIT_NPROC, RLIMIT_NOFILE, RLIMIT_MEMLOCK, RLIMIT_AS, RLIMIT_LOCKS, RLIMIT_SIGPENDING, RLIMIT_MSGQUEUE, RLIMIT_NICE, RLIMIT_RTPRIO, RLIMIT_RTTIME)"),
            (#"{"process": {"cwd": "/", "args": ["sh"], "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1}]}}"#,
             "config.json: process.rlimits[0].hard: required property is missing"),
            (#"{"process": {"cwd": "/", "args": ["sh"], "capabilities": {"bounding": ["CAP_FLY"]}}}"#,
             "config.json: process.capabilities.bounding[0]: unknown capability \"CAP_FLY\""),
            (#"{"process": {"cwd": "/", "args": ["sh"], "oomScoreAdj": 2000}}"#, "config.json: process.oomScoreAdj: must be between -1000 and 1000"),
            (#"{"process": {"cwd": "/", "args": ["sh"], "terminal": "yes"}}"#, "config.json: process.terminal: expected a boolean"),
            (#"{"root": {"readonly": true}}"#, "config.json: root.path: required property is missing"),
            (#"{"ociVersion": "2.0.0"}"#, "config.json: ociVersion: unsupported version \"2.0.0\" (Moat implements runtime-spec 1.x)"),
            (#"{"ociVersion": 1}"#, "config.json: ociVersion: expected a string"),
            (#"{"mounts": [{"destination": "/a", "options": "ro"}]}"#, "config.json: mounts[0].options: expected an array"),
            (#"{"mounts": [{"destination": "rel"}]}"#, "config.json: mounts[0].destination: must be an absolute path, got \"rel\""),
            (#"{"mounts": [{"source": "x"}]}"#, "config.json: mounts[0].destination: required property is missing"),
            (#"{"hooks": {"poststart": [{"path": "/bin/true", "timeout": 0}]}}"#, "config.json: hooks.poststart[0].timeout: must be at least 1"),
            (#"{"hooks": {"createRuntime": [{"args": []}]}}"#, "config.json: hooks.createRuntime[0].path: required property is missing"),
            (#"{"hooks": {"prestart": [{"path": "true"}]}}"#, "config.json: hooks.prestart[0].path: must be an absolute path, got \"true\""),
            (#"{"annotations": {"a": 1}}"#, "config.json: annotations.a: expected a string"),
            (#"{"hostname": 7}"#, "config.json: hostname: expected a string"),
            (#"{"linux": {"namespaces": [{"type": "pid"}, {"type": "nope"}]}}"#,
             "config.json: linux.namespaces[1].type: invalid value \"nope\" (expected one of mount, pid, network, uts, ipc, user, cgroup, time)"),
            (#"{"linux": {"namespaces": [{"type": "pid"}, {"type": "pid"}]}}"#, "config.json: linux.namespaces[1].type: duplicate namespace pid"),
            (#"{"linux": {"resources": {"memory": {"limit": "1G"}}}}"#, "config.json: linux.resources.memory.limit: expected an integer"),
            (#"{"linux": {"resources": {"memory": {"swappiness": 101}}}}"#, "config.json: linux.resources.memory.swappiness: must be between 0 and 100"),
            (#"{"linux": {"resources": {"pids": {}}}}"#, "config.json: linux.resources.pids.limit: required property is missing"),
            (#"{"linux": {"resources": {"cpu": {"shares": -2}}}}"#, "config.json: linux.resources.cpu.shares: expected an unsigned integer (64-bit)"),
            (#"{"linux": {"resources": {"devices": [{"allow": true, "access": "rwx"}]}}}"#,
             "config.json: linux.resources.devices[0].access: invalid access \"rwx\" (letters r, w, m)"),
            (#"{"linux": {"resources": {"blockIO": {"weight": 70000}}}}"#, "config.json: linux.resources.blockIO.weight: expected an unsigned integer (16-bit)"),
            (#"{"linux": {"resources": {"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}}}}"#,
             "config.json: linux.resources.blockIO.throttleReadBpsDevice[0].rate: required property is missing"),
            (#"{"linux": {"resources": {"hugepageLimits": [{"pageSize": "2MB"}]}}}"#, "config.json: linux.resources.hugepageLimits[0].limit: required property is missing"),
            (#"{"linux": {"resources": {"network": {"priorities": [{"name": "eth0"}]}}}}"#,
             "config.json: linux.resources.network.priorities[0].priority: required property is missing"),
            (#"{"linux": {"resources": {"unified": {"memory.max": 5}}}}"#, "config.json: linux.resources.unified.memory.max: expected a string"),
            (#"{"linux": {"seccomp": {"defaultAction": "SCMP_ACT_MAYBE"}}}"#,
             "config.json: linux.seccomp.defaultAction: invalid value \"SCMP_ACT_MAYBE\" (expected one of SCMP_ACT_KILL, SCMP_ACT_KILL_PROCESS, SCMP_ACT_KILL_THREAD, SCMP_ACT_TRAP, SCMP_ACT_ERRNO, SCMP_ACT_TRACE, SCMP_ACT_ALLOW, SCMP_ACT_LOG, SCMP_ACT_NOTIFY)"),
            (#"{"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]}}}"#,
             "config.json: linux.seccomp.syscalls[0].names: must name at least one syscall"),
            (#"{"linux": {"seccomp": {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "EQ"}]}]}}}"#,
             "config.json: linux.seccomp.syscalls[0].args[0].op: invalid value \"EQ\" (expected one of SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ)"),
            (#"{"linux": {"devices": [{"type": "x", "path": "/dev/x"}]}}"#, "config.json: linux.devices[0].type: invalid device type \"x\" (expected c, b, u or p)"),
            (#"{"linux": {"devices": [{"type": "c", "path": "/dev/x"}]}}"#, "config.json: linux.devices[0]: major and minor are required for device type c"),
            (#"{"linux": {"uidMappings": [{"containerID": 0, "hostID": 1000}]}}"#, "config.json: linux.uidMappings[0].size: required property is missing"),
            (#"{"linux": {"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}}"#, "config.json: linux.uidMappings: mappings need a user namespace in linux.namespaces"),
            (#"{"linux": {"rootfsPropagation": "weird"}}"#, "config.json: linux.rootfsPropagation: invalid value \"weird\" (expected one of private, shared, slave, unbindable)"),
            (#"{"linux": {"sysctl": {"net.ipv4.ip_forward": 1}}}"#, "config.json: linux.sysctl.net.ipv4.ip_forward: expected a string"),
            (#"{"linux": {"maskedPaths": "/proc/kcore"}}"#, "config.json: linux.maskedPaths: expected an array"),
            (#"{"linux": {"timeOffsets": {"realtime": {"secs": 1}}}}"#, "config.json: linux.timeOffsets.realtime: unknown clock (expected boottime or monotonic)"),
            (#"{"linux": {"personality": {"domain": "LINUX64"}}}"#, "config.json: linux.personality.domain: invalid value \"LINUX64\" (expected one of LINUX, LINUX32)"),
            (#"{"linux": {"memoryPolicy": {"nodes": "0"}}}"#, "config.json: linux.memoryPolicy.mode: required property is missing"),
            (#"{"linux": {"intelRdt": {"enableMonitoring": "yes"}}}"#, "config.json: linux.intelRdt.enableMonitoring: expected a boolean"),
            (#"{"linux": {"netDevices": {"eth0": {"name": 3}}}}"#, "config.json: linux.netDevices.eth0.name: expected a string"),
            (#"{"linux": []}"#, "config.json: linux: expected an object"),
            (#"{"windows": 3}"#, "config.json: windows: expected an object"),
        ]
        for (fragment, want) in cases {
            XCTAssertEqual(error(with(fragment)), want, "for \(fragment)")
        }
    }

    func testFullLinuxSectionDecodes() throws {
        let doc = with(#"""
        {"hostname": "h", "domainname": "d", "annotations": {"k": "v"},
         "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                    {"destination": "/data", "type": "bind", "source": "/tmp", "options": ["rbind", "ro"],
                     "uidMappings": [{"containerID": 0, "hostID": 1, "size": 2}]}],
         "process": {"cwd": "/", "args": ["sh"], "terminal": true, "consoleSize": {"height": 24, "width": 80},
                     "user": {"uid": 1, "gid": 2, "umask": 18, "additionalGids": [3, 4], "username": "u"},
                     "env": ["A=1"], "capabilities": {"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"], "inheritable": [], "ambient": []},
                     "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}], "noNewPrivileges": true,
                     "apparmorProfile": "p", "oomScoreAdj": -5, "selinuxLabel": "l",
                     "ioPriority": {"class": "IOPRIO_CLASS_BE", "priority": 4},
                     "scheduler": {"policy": "SCHED_OTHER", "nice": 1, "flags": ["SCHED_FLAG_RECLAIM"]},
                     "execCPUAffinity": {"initial": "0", "final": "0-1"}},
         "hooks": {"createRuntime": [{"path": "/bin/true", "args": ["true"], "env": ["X=1"], "timeout": 5}]},
         "linux": {"devices": [{"type": "c", "path": "/dev/fuse", "major": 10, "minor": 229, "fileMode": 438, "uid": 0, "gid": 0}],
                   "netDevices": {"eth1": {"name": "eth0"}},
                   "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
                   "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
                   "namespaces": [{"type": "pid"}, {"type": "network", "path": "/var/run/netns/x"}, {"type": "user"}],
                   "resources": {"devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}],
                                 "memory": {"limit": 1048576, "reservation": 1, "swap": 2, "kernel": -1, "kernelTCP": 1, "swappiness": 0,
                                            "disableOOMKiller": false, "useHierarchy": true, "checkBeforeUpdate": true},
                                 "cpu": {"shares": 1024, "quota": 100000, "burst": 0, "period": 100000, "realtimeRuntime": 1,
                                         "realtimePeriod": 1, "cpus": "0", "mems": "0", "idle": 0},
                                 "pids": {"limit": 100},
                                 "blockIO": {"weight": 10, "leafWeight": 10, "weightDevice": [{"major": 8, "minor": 0, "weight": 5}],
                                             "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 600}],
                                             "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 6}]},
                                 "hugepageLimits": [{"pageSize": "2MB", "limit": 0}],
                                 "network": {"classID": 1, "priorities": [{"name": "eth0", "priority": 5}]},
                                 "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}},
                                 "unified": {"io.weight": "10"}},
                   "cgroupsPath": "/a/b", "rootfsPropagation": "private",
                   "seccomp": {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
                               "flags": ["SECCOMP_FILTER_FLAG_LOG"], "listenerPath": "/run/l", "listenerMetadata": "m",
                               "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "valueTwo": 2, "op": "SCMP_CMP_EQ"}]}]},
                   "sysctl": {"net.ipv4.ip_forward": "1"}, "maskedPaths": ["/proc/kcore"], "readonlyPaths": ["/proc/sys"],
                   "mountLabel": "m", "intelRdt": {"closID": "c", "schemata": ["L3:0=f"], "enableMonitoring": true},
                   "memoryPolicy": {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]},
                   "personality": {"domain": "LINUX", "flags": []},
                   "timeOffsets": {"monotonic": {"secs": 1, "nanosecs": 2}}}}
        """#)
        let s = try Spec.decode(doc)
        XCTAssertEqual(s.process?.user.additionalGids, [3, 4])
        XCTAssertEqual(s.process?.user.umask, 18)
        XCTAssertEqual(s.process?.rlimits.first?.hard, 20)
        XCTAssertEqual(s.linux?.resources?.memory?.limit, 1048576)
        XCTAssertEqual(s.linux?.resources?.pids, 100)
        XCTAssertEqual(s.linux?.seccomp?.syscalls.first?.args.first?.valueTwo, 2)
        XCTAssertEqual(s.linux?.namespaces.map(\.type), ["pid", "network", "user"])
        XCTAssertEqual(s.linux?.timeOffsets.first?.1, 1)
        XCTAssertEqual(s.hooks?.createRuntime.first?.timeout, 5)
        XCTAssertEqual(s.mounts[1].uidMappings.first?.size, 2)
    }

    func testUnknownPropertiesAndNullsAreIgnored() throws {
        let s = try Spec.decode(with(#"{"hostname": null, "vendorExtension": {"x": [1, 2]}, "linux": {"futureField": 1}}"#))
        XCTAssertNil(s.hostname)
        XCTAssertNotNil(s.linux)
    }

    func testDefaultSpecDecodes() throws {
        let s = try Spec.decode(SpecTemplate.defaultConfig().serialized(pretty: true))
        XCTAssertEqual(s.process?.args, ["sh"])
        XCTAssertEqual(s.mounts.count, 7)
    }

    func testSignalNames() {
        XCTAssertEqual(Signals.parse("TERM"), 15)
        XCTAssertEqual(Signals.parse("SIGKILL"), 9)
        XCTAssertEqual(Signals.parse("sigusr1"), 10)
        XCTAssertEqual(Signals.parse("9"), 9)
        XCTAssertEqual(Signals.parse("RTMIN+2"), 36)
        XCTAssertNil(Signals.parse("0"))
        XCTAssertNil(Signals.parse("NOPE"))
    }

    func testJSONRoundTrip() throws {
        let text = #"{"a":[1,-2.5e3,true,null,"x\"\\\n\u0001é😀"],"b":{}}"#
        let j = try JSON.parse(text)
        XCTAssertEqual(try JSON.parse(j.serialized()), j)
        XCTAssertEqual(try JSON.parse(j.serialized(pretty: true)), j)
    }
}
