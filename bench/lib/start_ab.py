#!/usr/bin/env python3
"""Start-up of several moat builds (and runc) interleaved, for a loaded host:

    bench/lib/start_ab.py N ROOTFS NAME=CMD... [NAME=CMD ...]

Each CMD is a shell-split command line with {R} for ROOTFS, e.g.
    new='/tmp/moat run --rootfs {R} -- /bin/true'
    runc='runc run --bundle B ID-{i}'
Round i runs every command once, in a rotating order, so that load from
others falls on all of them alike. Prints, per command, wall ms median, min,
quartiles and the CPU ms (user+sys of all its processes, getrusage of the
children) median. Used for bench/results/2026-12-06-perf12-start.md.
"""
import os, resource, shlex, statistics, subprocess, sys, time

n, rootfs = int(sys.argv[1]), sys.argv[2]
cmds = [a.split("=", 1) for a in sys.argv[3:]]
wall = {k: [] for k, _ in cmds}
cpu = {k: [] for k, _ in cmds}
with open(os.devnull, "wb") as null:
    for i in range(n):
        for j in range(len(cmds)):
            k, c = cmds[(i + j) % len(cmds)]
            argv = shlex.split(c.replace("{R}", rootfs).replace("{i}", str(i)))
            r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.monotonic()
            p = subprocess.run(argv, stdout=null, stderr=null)
            t1 = time.monotonic()
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            if p.returncode != 0:
                print(f"{k}: status {p.returncode}", file=sys.stderr)
                continue
            wall[k].append((t1 - t0) * 1000)
            cpu[k].append((r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) * 1000)
print(f"| command | runs | wall ms median | min | quartiles | CPU ms median |")
print(f"| --- | ---: | ---: | ---: | --- | ---: |")
for k, _ in cmds:
    w = sorted(wall[k])
    if not w:
        print(f"| {k} | 0 | | | | |"); continue
    q = statistics.quantiles(w, n=4) if len(w) > 1 else [w[0]] * 3
    print(f"| {k} | {len(w)} | {statistics.median(w):.1f} | {w[0]:.1f} | {q[0]:.1f}–{q[2]:.1f} | {statistics.median(cpu[k]):.1f} |")
