#!/usr/bin/env python3
"""CPU of a `moat run` by process and phase, from perf recordings:

    perf record -F HZ --call-graph dwarf,16384 -o F.data -- moat run --rootfs R -- /bin/true
    bench/lib/perf_phases.py HZ F1.data [F2.data ...]

Each sample goes to a process (the launcher is the first pid seen; the Gofer
and the Sentry by their frames) and to a phase by the first rule of `phase`
that matches its call stack. Prints the mean ms per (process, phase) over the
recordings. Used for bench/results/2026-12-06-start-release-profile.md.
"""
import sys, subprocess, collections
def roles(data):
    out = subprocess.run(["perf","script","-i",data,"-F","pid,comm,ip,sym"], capture_output=True, text=True).stdout
    stacks = [s for s in out.split("\n\n") if s.strip()]
    pids = {}
    res = collections.Counter()
    first = None
    for s in stacks:
        lines = s.split("\n")
        head = lines[0].split()
        pid = int([h for h in head if h.isdigit()][0])
        if first is None: first = pid
        body = "\n".join(lines)
        comm = head[0]
        # `moat run` execs into the companion (`moat-sandbox launch`) after
        # parsing: the same pid, before and after its exec.
        if pid == first: role = "moat" if comm == "moat" else "launcher"
        elif "InternalCommandO5gofer" in body or "Gofer" in body and "Server" in body: role = "gofer"
        elif "stub" in body.lower() and "Sentry" not in body: role = "stub/app"
        else: role = "sentry"
        if "dl_main" in body or "_dl_start" in body or "_dl_relocate" in body: ph = "ld.so (load, relocate)"
        elif "call_init" in body or "_GLOBAL__sub" in body or "__CFInitialize" in body: ph = "static initializers (Swift runtime, Foundation)"
        elif "checkForCompletionScriptRequest" in body: ph = "ArgumentParser: completion-script check"
        elif "ArgumentParser" in body: ph = "ArgumentParser: parse"
        elif "moat_spawn" in body or "execve" in body: ph = "clone + exec"
        elif "copy_process" in body or "moat_fork_start" in body: ph = "fork"
        elif "exit_mmap" in body or "do_exit" in body or "do_group_exit" in body: ph = "exit (address space teardown)"
        elif "Sentry0A4MainO3run" in body and "driverMain" not in body: ph = "Sentry main (kernel, mounts, network, confinement)"
        elif "driverMain" in body or "execImage" in body: ph = "application (loader, syscalls)"
        elif "StubFactory" in body: ph = "stub factory"
        elif "Gofer" in body: ph = "Gofer serving"
        else: ph = "other"
        res[(role, ph)] += 1
    return res
tot = collections.Counter(); n = 0
for d in sys.argv[2:]:
    tot.update(roles(d)); n += 1
hz = float(sys.argv[1])
for (role, ph), v in sorted(tot.items(), key=lambda kv: (kv[0][0], -kv[1])):
    print(f"{role:9s} {ph:55s} {v/n/hz*1000:6.2f} ms")
byrole = collections.Counter()
for (role, ph), v in tot.items(): byrole[role] += v
print({r: round(v/n/hz*1000, 2) for r, v in byrole.items()}, "total", round(sum(tot.values())/n/hz*1000, 2))
