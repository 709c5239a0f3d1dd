#!/usr/bin/env python3
"""Memory of N idle sandboxes, summed over all their host processes.

    idle_mem.py --count N [--settle S] -- CMD [ARGS...]

Starts CMD N times (each in a new session; `{i}` in an argument becomes the
sandbox's number), waits until every one's process tree has stopped changing
(or --settle seconds), then reads /proc/PID/smaps_rollup of every process in
every tree: PSS (shared pages split among the processes mapping them) and USS
(Private_Clean + Private_Dirty: what the process alone holds). Prints
`key=value` lines for bench/mem.sh:

    procs=<host processes per sandbox>  pss_mb=<sum/N>  uss_mb=<sum/N>
    pss_total_mb=<sum>  uss_total_mb=<sum>  sbx_mb=<sum/N>  sbx_total_mb=<sum>
    status=ok | status=error error=...

USS per process misses pages that two processes of one sandbox share and
no other process maps (a launcher's pages its forked Gofer and Sentry
share copy-on-write): sbx is the sandbox as a whole, every page that only
its processes map (/proc/PID/pagemap frames whose /proc/kpagecount is the
number of times the sandbox maps them), what removing it would free.

The sandboxes are killed (SIGKILL to their sessions) before it exits.
Run as root (other users' smaps_rollup are unreadable).
"""
import argparse
import os
import signal
import subprocess
import sys
import struct
import time


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    return kids


def tree(root, kids):
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def frames(pids):
    """How often the processes `pids` map each physical page (frame number)."""
    seen = {}
    for pid in pids:
        try:
            maps = open(f"/proc/{pid}/maps").read().splitlines()
            pm = open(f"/proc/{pid}/pagemap", "rb", 0)
        except OSError:
            continue
        with pm:
            for line in maps:
                a, b = (int(x, 16) for x in line.split()[0].split("-"))
                if line.rstrip().endswith("[vsyscall]"):
                    continue
                try:
                    pm.seek(a // 4096 * 8)
                    data = pm.read((b - a) // 4096 * 8)
                except OSError:
                    continue
                for (e,) in struct.iter_unpack("<Q", data):
                    if e >> 63 and e & ((1 << 55) - 1):      # present, frame known
                        f = e & ((1 << 55) - 1)
                        seen[f] = seen.get(f, 0) + 1
    return seen


def exclusive_kb(pids, kpagecount):
    """kB of the pages that only `pids` map."""
    n = 0
    for f, c in frames(pids).items():
        kpagecount.seek(f * 8)
        raw = kpagecount.read(8)
        if len(raw) == 8 and struct.unpack("<Q", raw)[0] == c:
            n += 1
    return n * 4


def rollup(pid):
    pss = uss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k == "Pss":
                    pss += int(v.split()[0])
                elif k in ("Private_Clean", "Private_Dirty"):
                    uss += int(v.split()[0])
    except OSError:
        pass
    return pss, uss


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--settle", type=float, default=20.0, help="give up waiting for quiet trees after this")
    ap.add_argument("--detail", action="store_true", help="one line per process on stderr")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    procs = []
    try:
        for i in range(a.count):
            argv = [x.replace("{i}", str(i)) for x in cmd]
            procs.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True))
        # Quiet: the set of processes and the summed PSS are the same in
        # three samples 0.5 s apart.
        deadline = time.monotonic() + a.settle
        history = []
        while True:
            time.sleep(0.5)
            for p in procs:
                if p.poll() is not None:
                    print("status=error")
                    print(f"error=sandbox {procs.index(p)} exited with {p.returncode} before it was measured")
                    return 1
            kids = children_map()
            trees = [tree(p.pid, kids) for p in procs]
            pids = sorted(x for t in trees for x in t)
            pss = sum(rollup(x)[0] for x in pids)
            history.append((pids, pss // 1024))
            if len(history) >= 3 and all(h == history[-1] for h in history[-3:]):
                break
            if time.monotonic() > deadline:
                break
        pss = uss = 0
        for t in trees:
            for x in t:
                p, u = rollup(x)
                pss += p
                uss += u
                if a.detail:
                    try:
                        with open(f"/proc/{x}/cmdline") as f:
                            name = f.read().replace("\0", " ")[:60]
                    except OSError:
                        name = "?"
                    sys.stderr.write(f"{x:>8} pss {p / 1024:6.1f} MB  uss {u / 1024:6.1f} MB  {name}\n")
        sbx = 0
        with open("/proc/kpagecount", "rb", 0) as kc:
            for t in trees:
                sbx += exclusive_kb(t, kc)
        n = a.count
        print("status=ok")
        print(f"procs={sum(len(t) for t in trees) / n:g}")
        print(f"pss_mb={pss / 1024 / n:.1f}")
        print(f"uss_mb={uss / 1024 / n:.1f}")
        print(f"pss_total_mb={pss / 1024:.1f}")
        print(f"uss_total_mb={uss / 1024:.1f}")
        print(f"sbx_mb={sbx / 1024 / n:.1f}")
        print(f"sbx_total_mb={sbx / 1024:.1f}")
        return 0
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in procs:
            p.wait()


if __name__ == "__main__":
    sys.exit(main())
