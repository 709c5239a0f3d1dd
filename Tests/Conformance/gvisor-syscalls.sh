#!/usr/bin/env bash
# gVisor's own syscall tests (google/gvisor test/syscalls/linux, gtest
# programs that pass on Linux and are run under runsc), natively, in runsc
# and in Moat, case by case.
#
#   Tests/Conformance/gvisor-syscalls.sh build [NAME...]   build the test programs (+socket: SOCKET_PROGRAMS, +more: MORE_PROGRAMS)
#   Tests/Conformance/gvisor-syscalls.sh run [-o OUT] [-t SECS] [-s SIDES] [NAME...]
#   Tests/Conformance/gvisor-syscalls.sh table OUT...       Markdown table of runs
#   Tests/Conformance/gvisor-syscalls.sh cases OUT          redo OUT/cases from OUT/logs
#   Tests/Conformance/gvisor-syscalls.sh cache              where the build goes
#   Tests/Conformance/gvisor-syscalls.sh more               MORE_PROGRAMS (build/run them by name)
#
# Source: the mirror the `fetch` tool leaves under /work/.mirror (or
# $GVISOR_GIT_DIR, a bare git dir). Nothing of gVisor is committed: only
# test/syscalls/linux and test/util are extracted and compiled here with g++
# against Debian's libgtest-dev, libgmock-dev and libabsl-dev (no bazel),
# into $GVISOR_CACHE (default /var/cache/moat/gvisor-syscalls/<commit>-<hash
# of this script's build part>), rebuilt when missing. The programs are linked statically,
# so the same binary runs in the busybox root file system on every side.
# What bazel would bring and Debian lacks is replaced by stubs this script
# writes: google/benchmark (no benchmarks run) and bazel's runfiles (no test
# here reads a data file). The programs are built from their .cc alone plus
# the test/util library; a program that needs more (another .cc of
# test/syscalls/linux, e.g. the socket suites) is listed in EXTRA below.
#
# run: every program runs on each side of SIDES (default "native runsc
# moat") under a watchdog of SECS (default 300) with the runners of ltp.sh
# (a chroot in fresh namespaces; `runsc do`; `moat run`). Results come from
# gtest's per-case lines on stdout ("[       OK ]", "[  FAILED  ]",
# "[  SKIPPED ]"), not from --gtest_output=json: a program killed by the
# watchdog writes no JSON, and its finished cases still count. A case that
# started and never finished on a side that hung is HANG. For a Moat hang
# the program runs again with --strace; the log's tail goes to
# OUT/hangs/<name>.strace. OUT/cases holds "program case native runsc moat".
# Needs root and a built `moat` (swift build --product moat).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=ltp.sh
. "$here/ltp.sh"
gv_git="${GVISOR_GIT_DIR:-/work/.mirror/google+gvisor/repo}"
# The native side runs in a network namespace of its own, loopback up, as
# Moat's and runsc's (--network=none) do: as root these programs add
# addresses (socket_netlink_route), make tun devices, send raw and packet
# frames; none of it may reach the host's interfaces. ltp.sh's runner with
# -n and `ip link set lo up` (the host's ip, before the chroot).
eval "$(declare -f run_native | sed 's/unshare -m -i -u -p -f/unshare -m -i -u -n -p -f/; s/hostname moat/hostname moat; ip link set lo up/')"

# The programs the issue's failure clusters point at first (compat9), then
# what containers use most: files and directories, events, processes and
# signals, memory, Unix and loopback IP sockets (compat10).
DEFAULT_PROGRAMS="getdents open fork stat uname rlimits partial_bad_buffer mmap poll pipe clock_gettime
    timers epoll ppoll read write fcntl dup socket_unix_pair
    chmod chown link rename mkdir unlink truncate lseek pread64 pwrite64 readv preadv preadv2 pwritev2 xattr statfs symlink access chdir fchdir creat sync fsync sync_file_range flock sendfile splice mknod utimes stat_times fallocate fadvise64 readahead memfd inotify open_create close_range fifo sticky deleted dev chroot
    eventfd signalfd timerfd select pselect
    sigaction sigprocmask sigaltstack sigtimedwait sigstop kill tgkill tkill rtsignal pause wait exit vfork prctl sched sched_yield affinity getcpu futex itimer alarm rseq uidgid setgid getrandom sysinfo priority getrusage clock_getres clock_nanosleep time processes membarrier pidfd_test personality exceptions
    mremap madvise mlock msync munmap mincore brk mempolicy
    socket_unix_stream_local socket_unix_stream_blocking_local socket_unix_stream_nonblock_local socket_unix_dgram_local socket_unix_seqpacket_local socket_unix_abstract_nonblock socket_unix_filesystem_nonblock socket_unix_pair_nonblock socket_unix_domain socket_unix_unbound_stream socket_unix_unbound_dgram socket_unix_unbound_seqpacket socket_unix_unbound_abstract socket_unix_unbound_filesystem socket_unix_stream_listener_close socket_abstract socket_filesystem
    udp_socket tcp_socket udp_bind accept_bind accept_bind_stream bind socket socket_ip_tcp_loopback socket_ip_tcp_generic_loopback socket_ip_tcp_loopback_blocking socket_ip_tcp_loopback_nonblock socket_ip_udp_loopback socket_ip_udp_loopback_nonblock socket_ipv4_udp_unbound_loopback socket_ipv6_udp_unbound_loopback socket_inet_loopback socket_netlink_route socket_netlink readv_socket sendfile_socket"
# Socket and network programs never run before session 18 (compat25): the
# rest of test/syscalls/linux's socket targets but the *_external ones (they
# send to the outside network), /proc/net, raw, packet and ping sockets, tun.
# `build +socket` and `run ... +socket` take this list.
SOCKET_PROGRAMS="socket_ip_unbound socket_ip_unbound_netlink socket_ipv6_unbound socket_ipv4_udp_unbound_loopback_netlink
    socket_ipv6_udp_unbound_loopback_netlink socket_ipv4_datagram_based_socket_unbound_loopback socket_ip_tcp_udp_generic
    socket_ip_loopback_blocking socket_ip_udp_loopback_blocking socket_unix_blocking_local socket_unix_non_stream_blocking_local
    socket_unix_dgram_non_blocking socket_unix_stream socket_inet_loopback_isolated socket_inet_loopback_nogotsan
    socket_ipv4_udp_unbound_loopback_nogotsan socket_generic_stress socket_netdevice socket_netlink_uevent socket_netlink_netfilter
    socket_capability socketopt_test proc_net proc_net_tcp proc_net_udp proc_net_unix ping_socket raw_socket raw_socket_hdrincl
    raw_socket_icmp udp_raw_socket packet_socket packet_socket_dgram packet_socket_raw packet_mmap socket_bind_to_device
    socket_bind_to_device_sequence socket_bind_to_device_distribution network_namespace tuntap tuntap_hostinet"
# Programs that are not sockets and were never run before session 18
# (compat24): processes, exec, /proc, namespaces and mounts, memory, signals
# and the CPU, ptys, keys, Landlock, io_uring. `run` takes them by name
# (`run ... $(gvisor-syscalls.sh more)`); `build` with no name builds only
# DEFAULT_PROGRAMS.
MORE_PROGRAMS="proc proc_isolated proc_pid_smaps proc_pid_uid_gid_map proc_pid_oomscore
    exec exec_binary ptrace aio ioctl mount mount_fd pivot_root unshare setns
    vdso vdso_clock_gettime vsyscall sigreturn fault fpsig_fork fpsig_mut fpsig_nested
    process_vm_read_write pty pty_root capabilities prctl_setuid syslog 32bit arch_prctl
    concurrency sysret mmap_eternal memory_accounting iouring posix_acl keys bad
    landlock_v1 landlock_v2 landlock_v3 landlock_v4 landlock_v5 landlock_v6"
# A program whose source is not NAME.cc (bazel's target drops the _amd64).
declare -A SRC=([iouring]="io_uring.cc" [sigreturn]="sigreturn_amd64.cc" [fpsig_mut]="fpsig_mut_amd64.cc")
# Programs a test runs (bazel's data): built with it and put beside it in
# /opt/gvisor, where RunfilePath finds them. exit_script is exit_script.sh
# with /bin/sh for its interpreter (the root file system has no bash).
declare -A HELPERS=(
    [exec]="exec_assert_closed_workload exec_basic_workload exec_check_creds exec_proc_exe_workload exec_state_workload priority_execve exit_script"
    [sigaltstack]="sigaltstack_check"
)
# Sources a program needs beyond its own NAME.cc and test/util: the .cc files
# of the test/syscalls/linux libraries its bazel target depends on.
declare -A EXTRA=(
    [ioctl]="ip_socket_test_util.cc unix_domain_socket_test_util.cc"
    [poll]="base_poll_test.cc" [ppoll]="base_poll_test.cc"
    [socket_unix_pair]="socket_unix.cc socket_unix_cmsg.cc socket_unix_peercred.cc unix_domain_socket_test_util.cc"
    [readv]="readv_common.cc"
    [select]="base_poll_test.cc"
    [pselect]="base_poll_test.cc"
    [socket_unix_stream_local]="socket_stream.cc unix_domain_socket_test_util.cc"
    [socket_unix_stream_blocking_local]="socket_stream_blocking.cc unix_domain_socket_test_util.cc"
    [socket_unix_stream_nonblock_local]="socket_stream_nonblock.cc unix_domain_socket_test_util.cc"
    [socket_unix_dgram_local]="socket_non_stream.cc ip_socket_test_util.cc unix_domain_socket_test_util.cc socket_unix_dgram.cc socket_unix_non_stream.cc"
    [socket_unix_seqpacket_local]="socket_non_stream.cc ip_socket_test_util.cc unix_domain_socket_test_util.cc socket_unix_non_stream.cc socket_unix_seqpacket.cc"
    [socket_unix_abstract_nonblock]="socket_non_blocking.cc unix_domain_socket_test_util.cc"
    [socket_unix_filesystem_nonblock]="socket_non_blocking.cc unix_domain_socket_test_util.cc"
    [socket_unix_pair_nonblock]="socket_non_blocking.cc unix_domain_socket_test_util.cc"
    [socket_unix_domain]="socket_generic_test_cases.cc unix_domain_socket_test_util.cc"
    [socket_unix_unbound_stream]="unix_domain_socket_test_util.cc"
    [socket_unix_unbound_dgram]="unix_domain_socket_test_util.cc"
    [socket_unix_unbound_seqpacket]="unix_domain_socket_test_util.cc"
    [socket_unix_unbound_abstract]="unix_domain_socket_test_util.cc"
    [socket_unix_unbound_filesystem]="unix_domain_socket_test_util.cc"
    [socket_abstract]="socket_generic_test_cases.cc unix_domain_socket_test_util.cc socket_unix_cmsg.cc socket_unix.cc"
    [socket_filesystem]="socket_generic_test_cases.cc unix_domain_socket_test_util.cc socket_unix_cmsg.cc socket_unix.cc"
    [udp_socket]="ip_socket_test_util.cc unix_domain_socket_test_util.cc"
    [accept_bind]="unix_domain_socket_test_util.cc"
    [accept_bind_stream]="unix_domain_socket_test_util.cc"
    [bind]="unix_domain_socket_test_util.cc"
    [socket_ip_tcp_loopback]="ip_socket_test_util.cc socket_generic_test_cases.cc unix_domain_socket_test_util.cc"
    [socket_ip_tcp_generic_loopback]="ip_socket_test_util.cc socket_ip_tcp_generic.cc"
    [socket_ip_tcp_loopback_blocking]="ip_socket_test_util.cc socket_stream_blocking.cc unix_domain_socket_test_util.cc"
    [socket_ip_tcp_loopback_nonblock]="ip_socket_test_util.cc socket_non_blocking.cc unix_domain_socket_test_util.cc"
    [socket_ip_udp_loopback]="ip_socket_test_util.cc socket_generic_test_cases.cc unix_domain_socket_test_util.cc socket_ip_udp_generic.cc socket_non_stream.cc"
    [socket_ip_udp_loopback_nonblock]="ip_socket_test_util.cc socket_non_blocking.cc unix_domain_socket_test_util.cc"
    [socket_ipv4_udp_unbound_loopback]="ip_socket_test_util.cc socket_ipv4_udp_unbound.cc"
    [socket_ipv6_udp_unbound_loopback]="ip_socket_test_util.cc socket_ipv6_udp_unbound.cc"
    [socket_inet_loopback]="ip_socket_test_util.cc"
    [socket_netlink_route]="socket_netlink_route_util.cc socket_netlink_util.cc"
    [readv_socket]="readv_common.cc"
    [sendfile_socket]="ip_socket_test_util.cc unix_domain_socket_test_util.cc"
    # SOCKET_PROGRAMS
    [socket_ip_unbound]="ip_socket_test_util.cc"
    [socket_ip_unbound_netlink]="ip_socket_test_util.cc socket_netlink_route_util.cc socket_netlink_util.cc"
    [socket_ipv6_unbound]="ip_socket_test_util.cc"
    [socket_ipv4_udp_unbound_loopback_netlink]="ip_socket_test_util.cc socket_ipv4_udp_unbound_netlink.cc socket_netlink_route_util.cc socket_netlink_util.cc"
    [socket_ipv6_udp_unbound_loopback_netlink]="ip_socket_test_util.cc socket_ipv6_udp_unbound_netlink.cc socket_netlink_route_util.cc socket_netlink_util.cc"
    [socket_ipv4_datagram_based_socket_unbound_loopback]="ip_socket_test_util.cc socket_ipv4_datagram_based_socket_unbound.cc"
    [socket_ip_tcp_udp_generic]="ip_socket_test_util.cc"
    [socket_ip_loopback_blocking]="ip_socket_test_util.cc socket_blocking.cc unix_domain_socket_test_util.cc"
    [socket_ip_udp_loopback_blocking]="ip_socket_test_util.cc socket_non_stream_blocking.cc unix_domain_socket_test_util.cc"
    [socket_unix_blocking_local]="socket_blocking.cc unix_domain_socket_test_util.cc"
    [socket_unix_non_stream_blocking_local]="socket_non_stream_blocking.cc unix_domain_socket_test_util.cc"
    [socket_unix_dgram_non_blocking]="unix_domain_socket_test_util.cc"
    [socket_unix_stream]="unix_domain_socket_test_util.cc"
    [socket_inet_loopback_isolated]="socket_netlink_util.cc"
    [socket_inet_loopback_nogotsan]="ip_socket_test_util.cc"
    [socket_ipv4_udp_unbound_loopback_nogotsan]="ip_socket_test_util.cc"
    [socket_generic_stress]="ip_socket_test_util.cc"
    [socket_netdevice]="socket_netlink_util.cc"
    [socket_netlink_uevent]="socket_netlink_util.cc"
    [socket_netlink_netfilter]="socket_netlink_netfilter_util.cc socket_netlink_util.cc"
    [ping_socket]="ip_socket_test_util.cc"
    [raw_socket]="ip_socket_test_util.cc unix_domain_socket_test_util.cc"
    [raw_socket_hdrincl]="unix_domain_socket_test_util.cc"
    [raw_socket_icmp]="unix_domain_socket_test_util.cc"
    [packet_socket]="ip_socket_test_util.cc"
    [packet_socket_dgram]="ip_socket_test_util.cc unix_domain_socket_test_util.cc"
    [packet_socket_raw]="ip_socket_test_util.cc unix_domain_socket_test_util.cc"
    [packet_mmap]="ip_socket_test_util.cc"
    [socket_bind_to_device]="ip_socket_test_util.cc socket_bind_to_device_util.cc"
    [socket_bind_to_device_sequence]="ip_socket_test_util.cc socket_bind_to_device_util.cc"
    [socket_bind_to_device_distribution]="ip_socket_test_util.cc socket_bind_to_device_util.cc"
    [network_namespace]="ip_socket_test_util.cc"
    [tuntap]="socket_netlink_route_util.cc socket_netlink_util.cc"
    [proc_net_unix]="unix_domain_socket_test_util.cc"
    [proc_net_tcp]="ip_socket_test_util.cc"
    [proc_net_udp]="ip_socket_test_util.cc"
)
# test/util sources that are not for Linux, need bazel, or are tests themselves.
UTIL_SKIP='_test\.cc$|fuchsia|save_util_other|test_util_runfiles|test_main'

gv_cache() {
    local c h; c="$(git --git-dir="$gv_git" rev-parse HEAD)"
    # Keyed by what decides the build (not by the runner's code).
    h="$( { declare -f cmd_build cxx stubs; echo "$DEFAULT_PROGRAMS ${EXTRA[*]} ${SRC[*]} ${HELPERS[*]} $UTIL_SKIP"; } | sha256sum | cut -c1-8)"
    echo "${GVISOR_CACHE:-/var/cache/moat/gvisor-syscalls/${c:0:12}-$h}"
}

# The programs named (+socket: SOCKET_PROGRAMS, +more: MORE_PROGRAMS), or DEFAULT_PROGRAMS.
program_names() {
    local a out=""
    [ $# -gt 0 ] || set -- $DEFAULT_PROGRAMS
    for a in "$@"; do
        case "$a" in +socket) out+=" $SOCKET_PROGRAMS" ;; +more) out+=" $MORE_PROGRAMS" ;; *) out+=" $a" ;; esac
    done
    echo $out
}

cxx() { g++ -std=c++17 -O0 -g0 -w -pthread -I"$1/src" -I"$1/stubs" -c "$2" -o "$3"; }

stubs() {
    local s="$1/stubs"
    mkdir -p "$s/benchmark" "$s/tools/cpp/runfiles"
    cat >"$s/benchmark/benchmark.h" <<'EOF'
// Written by Moat's gvisor-syscalls.sh: no benchmarks are built or run.
#pragma once
namespace benchmark {
inline void Initialize(int*, char**) {}
inline void RunSpecifiedBenchmarks() {}
inline bool FLAGS_benchmark_list_tests = false;
// Keeps a busy loop's value alive (timers, concurrency spin on it).
template <class T> inline void DoNotOptimize(T&& v) { asm volatile("" : : "g"(v) : "memory"); }
}
EOF
    sed -i 's/^extern bool FLAGS_benchmark_list_tests;$//' "$1/src/test/util/test_util_impl.cc"
    # Debian's abseil (20220623) predates the (Reader|Writer)MutexLock taking
    # a reference and Mutex's lower-case lock()/unlock(); its string_view is
    # not std::string_view.
    sed -i 's/absl::\(Reader\|Writer\|\)MutexLock \([a-z_]*\)(\([a-z_.]*\));/absl::\1MutexLock \2(\&\3);/' "$1"/src/test/syscalls/linux/*.cc
    grep -l 'absl::Mutex mu;' "$1"/src/test/syscalls/linux/*.cc | xargs -r sed -i 's/\bmu\.lock()/mu.Lock()/; s/\bmu\.unlock()/mu.Unlock()/'
    sed -i 's/std::vector<std::string_view> tags = absl::StrSplit/std::vector<std::string> tags = absl::StrSplit/' "$1/src/test/util/mount_util.cc"
    sed -i 's/described_key.type = element;/described_key.type = std::string(element);/' "$1/src/test/syscalls/linux/keys.cc"
    # Nor has it absl/log (fpsig_mut logs two lines with LOG(INFO)).
    sed -i 's|^#include "absl/log/log.h"|#include <iostream>\n#define LOG(severity) std::cerr|' "$1/src/test/syscalls/linux/fpsig_mut_amd64.cc"
    sed -i 's/absl::BytesToHexString(std::string_view(/absl::BytesToHexString(absl::string_view(/' "$1"/src/test/syscalls/linux/packet_socket_dgram.cc
    cat >"$s/runfiles.cc" <<'EOF'
// Written by Moat's gvisor-syscalls.sh: no bazel runfiles. A program of
// test/syscalls/linux (a workload a test executes) is in /opt/gvisor beside
// the tests; other paths stay as given.
#include <string>
namespace gvisor { namespace testing {
std::string RunfilePath(std::string path) {
  const std::string dir = "test/syscalls/linux/";
  if (path.compare(0, dir.size(), dir) == 0 && path.find('/', dir.size()) == std::string::npos)
    return "/opt/gvisor/" + path.substr(dir.size());
  return path;
}
} }
EOF
}

cmd_build() {
    [ -d "$gv_git" ] || { echo "gvisor-syscalls.sh: no gVisor git dir at $gv_git (fetch github:google/gvisor)" >&2; exit 1; }
    for f in /usr/include/gtest/gtest.h /usr/include/gmock/gmock.h /usr/include/absl/strings/str_cat.h; do
        [ -f "$f" ] || { echo "gvisor-syscalls.sh: missing $f (run .ci/setup)" >&2; exit 1; }
    done
    local cache; cache="$(gv_cache)"
    mkdir -p "$cache/bin" "$cache/obj"
    exec 9>"$cache/.lock"; flock 9
    export -f cxx; export cache
    if [ ! -f "$cache/.extracted" ]; then
        rm -rf "$cache/src"; mkdir -p "$cache/src"
        # One subtree at a time: archiving HEAD with a pathspec walks the
        # whole tree, and the mirror may lack the blobs of large files elsewhere.
        for d in test/syscalls/linux test/util; do
            git --git-dir="$gv_git" archive --prefix="$d/" "HEAD:$d" | tar -x -C "$cache/src"
        done
        stubs "$cache"
        touch "$cache/.extracted"
    fi
    if [ ! -f "$cache/libutil.a" ]; then
        # In parallel: each file parses gtest, gmock and absl (slow).
        ls "$cache"/src/test/util/*.cc "$cache/stubs/runfiles.cc" | grep -Ev "$UTIL_SKIP" |
            xargs -P "${JOBS:-3}" -I{} bash -c 'o="$cache/obj/util-$(basename {} .cc).o"; [ -f "$o" ] ||
                cxx "$cache" {} "$o" 2>"$o.log" || echo "util: $(basename {}) did not compile" >>"$cache/util.log"'
        cxx "$cache" "$cache/src/test/util/test_main.cc" "$cache/obj/test_main.o"
        ar rcs "$cache/libutil.a" "$cache"/obj/util-*.o
    fi
    local absl; absl="$(ls /usr/lib/x86_64-linux-gnu/libabsl_*.a)"
    local names n e d
    read -r -a names <<<"$(program_names "$@")"
    for n in "${names[@]}"; do for e in ${HELPERS[$n]:-}; do names+=("$e"); done; done
    if [[ " ${names[*]} " == *" exit_script "* ]] && [ ! -x "$cache/bin/exit_script" ]; then
        sed '1s|.*|#!/bin/sh|' "$cache/src/test/syscalls/linux/exit_script.sh" >"$cache/bin/exit_script"
        chmod 755 "$cache/bin/exit_script"
    fi
    # Every object of every program first, in parallel; then the links.
    for n in "${names[@]}"; do
        [ -x "$cache/bin/$n" ] || [ -f "$cache/notbuilt/$n" ] && continue
        echo "${SRC[$n]:-$n.cc}"; for e in ${EXTRA[$n]:-}; do echo "$e"; done
    done | sort -u | xargs -r -P "${JOBS:-3}" -I{} bash -c 'o="$cache/obj/$(basename {} .cc).o"; [ -f "$o" ] ||
        cxx "$cache" "$cache/src/test/syscalls/linux/{}" "$o" 2>"$o.log" || true'
    for n in "${names[@]}"; do
        [ -x "$cache/bin/$n" ] && continue
        [ -f "$cache/notbuilt/$n" ] && continue
        local srcs=("${SRC[$n]:-$n.cc}") e ok=1 objs=()
        for e in ${EXTRA[$n]:-}; do srcs+=("$e"); done
        for e in "${srcs[@]}"; do
            local o; o="$cache/obj/$(basename "$e" .cc).o"
            [ -f "$o" ] || { cat "$o.log" >>"$cache/$n.log"; ok=0; break; }
            objs+=("$o")
        done
        if [ $ok = 1 ]; then
            # shellcheck disable=SC2086
            # A program with its own main (fcntl: it runs itself as a child) takes no test_main.
            grep -q '^int main(' "$cache/src/test/syscalls/linux/${srcs[0]}" || objs+=("$cache/obj/test_main.o")
            g++ -static -pthread -o "$cache/bin/$n" "${objs[@]}" "$cache/libutil.a" \
                -lgmock -lgtest -Wl,--start-group $absl -Wl,--end-group 2>>"$cache/$n.log" || ok=0
        fi
        if [ $ok = 1 ]; then echo "built $n"; else
            mkdir -p "$cache/notbuilt"; grep -m3 'error' "$cache/$n.log" >"$cache/notbuilt/$n" || true
            echo "NOT BUILT $n: $(head -1 "$cache/notbuilt/$n")"
        fi
    done
}

# Per-case verdicts from a program's gtest output: "case VERDICT" lines.
cases_of() {
    local log="$1" hung="$2"
    [ -f "$log" ] || return 0
    awk -v hung="$hung" '
        # A typed or parameterised case ends "name, where TypeParam = ...".
        { c = $4; sub(/,$/, "", c) }
        /^\[ RUN      \] / { order[++k] = c; v[c] = (hung ? "HANG" : "CRASH") }
        /^\[       OK \] / { v[c] = "PASS" }
        /^\[  FAILED  \] / && (c in v) && v[c] != "PASS" { v[c] = "FAIL" }
        /^\[  SKIPPED \] / { v[c] = "SKIP" }
        END { for (i = 1; i <= k; i++) print order[i], v[order[i]] }' "$log"
}

# One line per case of program N: "program case native runsc moat" ("-":
# not run on that side, or the program died before it).
merge_cases() {
    local n="$1" sides="$2" out="$3"
    awk -v prog="$n" -v sides="$sides" -v dir="$out/logs" '
        BEGIN { ns = split(sides, S, " ")
            for (i = 1; i <= ns; i++) { f = dir "/" prog "." S[i] ".cases"
                while ((getline l < f) > 0) { split(l, a, " "); if (!(a[1] in seen)) { seen[a[1]] = 1; order[++k] = a[1] } r[a[1], S[i]] = a[2] } }
            for (j = 1; j <= k; j++) { c = order[j]
                printf "%s %s %s %s %s\n", prog, c, ((c, "native") in r) ? r[c, "native"] : "-",
                    ((c, "runsc") in r) ? r[c, "runsc"] : "-", ((c, "moat") in r) ? r[c, "moat"] : "-" } }'
}

# cases OUT: redo OUT/cases from the logs (after a change to the parser).
cmd_cases() {
    local out="$1" n s sides
    : >"$out/cases"
    for n in $(awk '$2 != "NOTBUILT" {print $1}' "$out/programs" | uniq); do
        sides="$(awk -v n="$n" '$1 == n {printf "%s ", $2}' "$out/programs")"
        for s in $sides; do
            cases_of "$out/logs/$n.$s" "$(grep -q "^$n $s HANG" "$out/programs" && echo 1 || echo 0)" >"$out/logs/$n.$s.cases"
        done
        merge_cases "$n" "$sides" "$out" >>"$out/cases"
    done
}

cmd_run() {
    local out="" secs=300 sides="native runsc moat"
    while [ $# -gt 0 ]; do
        case "$1" in -o) out="$2"; shift 2 ;; -t) secs="$2"; shift 2 ;; -s) sides="$2"; shift 2 ;; *) break ;; esac
    done
    [ "$(id -u)" = 0 ] || { echo "gvisor-syscalls.sh run: needs root" >&2; exit 1; }
    local cache; cache="$(gv_cache)"
    out="${out:-$repo/.cache/gvisor-syscalls/$(date -u +%Y%m%d-%H%M%S)}"
    mkdir -p "$out/logs" "$out/hangs"
    local names
    read -r -a names <<<"$(program_names "$@")"
    sh "$repo/rootfs/busybox.sh" "$cache/busybox" >/dev/null
    local root="$cache/root.$$"
    rm -rf "$root"; cp -a "$cache/busybox" "$root"
    # shellcheck disable=SC2064
    trap "rm -rf '$root'" EXIT
    mkdir -p "$root/opt/gvisor" "$root/dev/shm" "$root/tmp"
    chmod 1777 "$root/tmp" "$root/dev/shm"
    ltp_env=(TMPDIR=/tmp PATH=/opt/gvisor:/bin:/sbin:/usr/bin:/usr/sbin HOME=/root)
    # gVisor's runner tells a program what the platform supports (e.g.
    # "32BIT:TRUE,ALIGNMENT_CHECK:TRUE,MULTIPROCESS:TRUE,INT3:TRUE,VSYSCALL:TRUE");
    # without it a case that asks (ptrace Int3, 32bit) aborts its program, and
    # the cases after it never run. Passed on when set; unset by default.
    if [ -n "${GVISOR_PLATFORM_SUPPORT:-}" ]; then ltp_env+=("GVISOR_PLATFORM_SUPPORT=$GVISOR_PLATFORM_SUPPORT"); fi
    : >"$out/cases"
    local n s rc e
    for n in "${names[@]}"; do
        if [ ! -x "$cache/bin/$n" ]; then echo "$n NOTBUILT" >>"$out/programs"; continue; fi
        cp "$cache/bin/$n" "$root/opt/gvisor/$n"
        for e in ${HELPERS[$n]:-}; do if [ -x "$cache/bin/$e" ]; then cp "$cache/bin/$e" "$root/opt/gvisor/$e"; fi; done
        for s in $sides; do
            rc=0
            "run_$s" "$root" "$secs" "$out/logs/$n.$s" "/opt/gvisor/$n" || rc=$?
            echo "$n $s $(verdict $rc)" >>"$out/programs"
            cases_of "$out/logs/$n.$s" "$([ "$(verdict $rc)" = HANG ] && echo 1 || echo 0)" >"$out/logs/$n.$s.cases"
            if [ "$s" = moat ] && [ "$(verdict $rc)" = HANG ]; then
                timeout -s KILL "$secs" "${MOAT_BIN:-$repo/.build/debug/moat}" run --rootfs "$root" --cwd /tmp --strace \
                    --log "$out/hangs/$n.full" -- "/opt/gvisor/$n" >/dev/null 2>&1 </dev/null || true
                tail -n 40 "$out/hangs/$n.full" >"$out/hangs/$n.strace" 2>/dev/null || true
                rm -f "$out/hangs/$n.full"
            fi
        done
        merge_cases "$n" "$sides" "$out" >>"$out/cases"
    done
    echo "$out"
}

# table OUT...: several runs (e.g. of disjoint program sets) make one table.
cmd_table() {
    local progs cases o
    progs="$(mktemp)"; cases="$(mktemp)"
    for o in "$@"; do cat "$o/programs" >>"$progs"; cat "$o/cases" >>"$cases"; done
    echo "Programs: $(awk '{print $1}' "$progs" | sort -u | wc -l); not built: $(grep -c NOTBUILT "$progs" || true)."
    echo
    awk '{ t[$1]++; if ($3 == "PASS") n[$1]++; if ($4 == "PASS") r[$1]++; if ($5 == "PASS") m[$1]++
           if ($4 == "PASS" && $5 != "PASS") x[$1]++; if (!($1 in seen)) { seen[$1] = 1; o[++k] = $1 } }
         END { print "| program | cases | native PASS | runsc PASS | Moat PASS | runsc PASS, Moat not |"; print "|---|---|---|---|---|---|"
               for (i = 1; i <= k; i++) { p = o[i]; T += t[p]; N += n[p]; R += r[p]; M += m[p]; X += x[p]
                   printf "| %s | %d | %d | %d | %d | %d |\n", p, t[p], n[p], r[p], m[p], x[p] }
               printf "| **total** | %d | %d | %d | %d | %d |\n", T, N, R, M, X }' "$cases"
    echo
    echo "Program-level verdicts (exit status; HANG = killed by the watchdog):"
    echo
    echo '```'
    cat "$progs"
    echo '```'
    echo
    echo "Cases runsc passes and Moat does not (Moat's verdict):"
    echo
    awk '$4 == "PASS" && $5 != "PASS" { printf "- %s %s: %s\n", $1, $2, $5 }' "$cases"
    rm -f "$progs" "$cases"
}

case "${1:-}" in
    build) shift; cmd_build "$@" ;;
    run) shift; cmd_run "$@" ;;
    table) shift; cmd_table "$@" ;;
    cases) shift; cmd_cases "$@" ;;
    cache) gv_cache ;;
    more) echo $MORE_PROGRAMS ;;
    *) sed -n '2,34p' "$0" >&2; exit 2 ;;
esac
