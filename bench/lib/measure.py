#!/usr/bin/env python3
"""Run one benchmark command several times and summarise it for bench/run.sh.

    measure.py [options] -- CMD [ARGS...]

Every repetition runs CMD once, as a child of this process, with stdout and
stderr captured, in a new session (so a timeout can kill the whole process
group) and, when memory is measured, in a transient cgroup of its own.

Modes
  --metric KEY   CMD prints KEY=<float>; the figure is that float, divided by
                 --scale (e.g. ns -> us with --scale 1000).
  (default)      the figure is the wall time of CMD in ms, from just before
                 exec (after the child joined its cgroup) until it is reaped,
                 on CLOCK_MONOTONIC (time.perf_counter_ns).

Memory (--mem auto|none|cgroup2|cgroup1|time)
  cgroup2  a transient cgroup on a cgroup v2 mount with the memory controller:
           memory.peak after CMD exits.
  cgroup1  a transient cgroup in the v1 memory hierarchy (under our own):
           memory.max_usage_in_bytes after CMD exits.
  time     /usr/bin/time -f %M: max RSS of the largest single process (GNU time
           reports the biggest child, not a sum).
  auto     the first of cgroup2, cgroup1, time that works here.
  Cgroup figures are what the kernel charged to the group: anonymous memory,
  page tables, kernel memory and page cache first touched by CMD (pages that
  were already cached, e.g. the runtime's own binary after the warm-up run,
  are not charged again). Every process CMD starts stays in the group unless it
  moves itself out, so the figure is the group-wide peak, not one process.

Output (stdout), one `key=value` per line, ready for `eval`-free parsing:
  status=ok|error
  value=<median> (min–max) formatted for a table cell   [metric/wall]
  mem=<median MiB> (min–max)                             [when measured]
  mem_method=<how memory was measured>
  error=<one-line reason>                                [status=error]
With --raw FILE a JSON line with every sample is appended to FILE.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

CG_PREFIX = "moat-bench."
CG_TAG = "x"  # --cg-tag: lets bench/run.sh sweep its own leftovers


# --------------------------------------------------------------------------
# Formatting

def fmt(v):
    """Three significant figures without scientific notation."""
    a = abs(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    if a >= 0.01:
        return "%.3f" % v
    if a == 0:
        return "0"
    return "%.2g" % v


def cell(samples):
    med = statistics.median(samples)
    if len(samples) == 1:
        return fmt(med)
    return "%s (%s–%s)" % (fmt(med), fmt(min(samples)), fmt(max(samples)))


def one_line(text, limit=100):
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    msg = lines[-1] if lines else ""
    msg = msg.replace("|", "/").replace("`", "'")
    if len(msg) > limit:
        msg = msg[: limit - 1] + "…"
    return msg


# --------------------------------------------------------------------------
# Memory accounting back ends

def read_mounts():
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 4:
                yield parts[1].replace("\\040", " "), parts[2], parts[3].split(",")


def own_cgroup(hierarchy_match):
    """Our path in a hierarchy of /proc/self/cgroup; hierarchy_match(ctrls)."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            hid, ctrls, path = line.rstrip("\n").split(":", 2)
            if hierarchy_match(hid, ctrls.split(",") if ctrls else []):
                return path
    return None


class CgroupMem:
    """A fresh cgroup per run; reads the peak; kills leftovers; removes it."""

    def __init__(self, kind, parent, peak_file):
        self.kind = kind
        self.parent = parent
        self.peak_file = peak_file
        self.counter = 0
        self.path = None

    @property
    def method(self):
        if self.kind == "cgroup2":
            return "cgroup v2 memory.peak of a transient cgroup"
        return "cgroup v1 memory.max_usage_in_bytes of a transient cgroup"

    def prepare(self):
        self.counter += 1
        self.path = os.path.join(self.parent, "%s%s.%d.%d" % (CG_PREFIX, CG_TAG, os.getpid(), self.counter))
        os.mkdir(self.path)
        if not os.path.exists(os.path.join(self.path, self.peak_file)):
            self.cleanup()
            raise OSError("no %s in %s" % (self.peak_file, self.parent))
        return self.path

    def wrap(self, cmd):
        return cmd

    def preexec(self):
        path = self.path

        def join():
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write("0\n")  # "0" = the writing process (v1 and v2)
        return join

    def kill_all(self):
        if not self.path:
            return
        for _ in range(50):
            try:
                with open(os.path.join(self.path, "cgroup.procs")) as f:
                    pids = [int(p) for p in f.read().split()]
            except OSError:
                return
            if not pids:
                return
            for p in pids:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)

    def peak_bytes(self):
        with open(os.path.join(self.path, self.peak_file)) as f:
            return int(f.read().strip())

    def cleanup(self):
        if not self.path:
            return
        self.kill_all()
        for _ in range(100):
            try:
                os.rmdir(self.path)
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)
        self.path = None


class TimeMem:
    """GNU time's %M: peak RSS of the largest process, in KiB."""

    method = "GNU /usr/bin/time -f %M (max RSS of the largest single process)"

    def __init__(self):
        self.out = None

    def prepare(self):
        fd, self.out = tempfile.mkstemp(prefix="moat-bench-time.")
        os.close(fd)

    def wrap(self, cmd):
        return ["/usr/bin/time", "-f", "%M", "-o", self.out] + cmd

    def preexec(self):
        return None

    def kill_all(self):
        pass

    def peak_bytes(self):
        with open(self.out) as f:
            lines = [l for l in f.read().split() if l.strip().isdigit()]
        return int(lines[-1]) * 1024

    def cleanup(self):
        if self.out:
            try:
                os.unlink(self.out)
            except OSError:
                pass
            self.out = None


def try_cgroup2():
    for mnt, fstype, _ in read_mounts():
        if fstype != "cgroup2":
            continue
        try:
            with open(os.path.join(mnt, "cgroup.controllers")) as f:
                if "memory" not in f.read().split():
                    continue
        except OSError:
            continue
        # The root is exempt from the no-internal-processes rule, and its
        # subtree_control normally has memory enabled; try our own cgroup
        # first (if it delegates memory), then the root.
        cands = []
        own = own_cgroup(lambda hid, c: hid == "0" and not c)
        if own and own != "/":
            cands.append(os.path.join(mnt, own.lstrip("/")))
        cands.append(mnt)
        for parent in cands:
            try:
                with open(os.path.join(parent, "cgroup.subtree_control")) as f:
                    if "memory" not in f.read().split():
                        continue
                m = CgroupMem("cgroup2", parent, "memory.peak")
                m.prepare()
                m.cleanup()
                return m
            except OSError:
                continue
    return None


def try_cgroup1():
    for mnt, fstype, opts in read_mounts():
        if fstype != "cgroup" or "memory" not in opts:
            continue
        own = own_cgroup(lambda hid, c: "memory" in c) or "/"
        parent = os.path.join(mnt, own.lstrip("/"))
        try:
            m = CgroupMem("cgroup1", parent, "memory.max_usage_in_bytes")
            m.prepare()
            m.cleanup()
            return m
        except OSError:
            continue
    return None


def try_time():
    if os.access("/usr/bin/time", os.X_OK):
        return TimeMem()
    return None


def backends(mem):
    """(group, wrapper, reporter) for a --mem choice.

    group    a CgroupMem used for every run, measured or not, when any cgroup
             works here: it contains whatever CMD starts (runsc's sandbox calls
             setsid, so killing our process group is not enough) and lets us
             kill it all after a timeout.
    wrapper  a TimeMem when GNU time measures memory.
    reporter whichever of the two reports the peak, or None.
    """
    want = {"cgroup2": try_cgroup2, "cgroup1": try_cgroup1}
    group = None
    if mem in want:
        group = want[mem]()
        if group is None:
            raise RunError("no usable %s memory cgroup here" % mem)
        return group, None, group
    group = try_cgroup2() or try_cgroup1()
    if mem == "none":
        return group, None, None
    if mem == "auto" and group is not None:
        return group, None, group
    wrapper = try_time()
    if wrapper is None:
        raise RunError("no memory cgroup and no /usr/bin/time (apt-get install time)")
    return group, wrapper, wrapper


# --------------------------------------------------------------------------
# Running

class RunError(Exception):
    pass


def run_once(cmd, args, group, wrapper, reporter):
    """Run cmd once; returns (wall seconds, stdout, stderr, peak bytes|None)."""
    rfd = wfd = -1
    try:
        if group:
            group.prepare()
        if wrapper:
            wrapper.prepare()
        full = wrapper.wrap(cmd) if wrapper else cmd
        join = group.preexec() if group else None
        # The clock starts in the child, after it has joined the cgroup (a v1
        # cgroup migration can take milliseconds) and right before exec; the
        # child sends its start time through a pipe.
        rfd, wfd = os.pipe()

        def child_start():
            if join:
                join()
            os.write(wfd, b"%d\n" % time.perf_counter_ns())
            os.close(wfd)

        try:
            p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, start_new_session=True,
                                 preexec_fn=child_start, pass_fds=(wfd,), env=args.env_dict)
        except (OSError, subprocess.SubprocessError) as e:
            raise RunError("cannot start %s: %s" % (cmd[0], getattr(e, "strerror", None) or e))
        os.close(wfd)
        wfd = -1
        try:
            out, err = p.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if group:
                group.kill_all()
            p.communicate()
            raise RunError("timed out after %gs" % args.timeout)
        t1 = time.perf_counter_ns()
        t0 = int(os.read(rfd, 64).split()[0])
        out = out.decode(errors="replace")
        err = err.decode(errors="replace")
        if p.returncode != 0:
            why = one_line(err) or one_line(out) or "no output"
            raise RunError("exit %d: %s" % (p.returncode, why) if p.returncode > 0
                           else "killed by signal %d: %s" % (-p.returncode, why))
        peak = reporter.peak_bytes() if reporter else None
        return (t1 - t0) / 1e9, out, err, peak
    finally:
        for fd in (rfd, wfd):
            if fd >= 0:
                os.close(fd)
        if wrapper:
            wrapper.cleanup()
        if group:
            group.cleanup()  # also kills anything CMD left running in it


def parse_metric(out, key):
    val = None
    for line in out.splitlines():
        line = line.strip()
        if line.startswith(key + "="):
            try:
                val = float(line[len(key) + 1:])
            except ValueError:
                pass
    return val


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    ap.add_argument("--metric", help="parse KEY=<float> from stdout")
    ap.add_argument("--scale", type=float, default=1.0, help="divide the metric by this")
    ap.add_argument("--mem", default="none", choices=["none", "auto", "cgroup2", "cgroup1", "time"])
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per run")
    ap.add_argument("--raw", help="append a JSON line with all samples here")
    ap.add_argument("--label", default="", help="name for the --raw record")
    ap.add_argument("--env", action="append", metavar="K=V",
                    help="run CMD with exactly these variables (repeatable)")
    ap.add_argument("--cg-tag", default="x", help="tag in transient cgroup names")
    ap.add_argument("--probe", action="store_true",
                    help="only print mem_method=<how --mem would measure> (or none)")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.probe:
        try:
            _, _, rep = backends(args.mem)
            print("mem_method=%s" % (rep.method if rep else "none"))
        except RunError:
            print("mem_method=none")
        return 0
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given")

    global CG_TAG
    CG_TAG = "".join(c for c in args.cg_tag if c.isalnum() or c in "-_") or "x"
    args.env_dict = None
    if args.env:
        args.env_dict = dict(kv.split("=", 1) for kv in args.env if "=" in kv)

    values, peaks = [], []
    # values are the metric divided by --scale (e.g. µs for ns_per_call / 1000)
    record = {"label": args.label, "cmd": cmd, "metric": args.metric or "wall_ms",
              "scale": args.scale if args.metric else 1.0}
    mem = None
    try:
        group, wrapper, mem = backends(args.mem)
        for _ in range(args.warmup):
            run_once(cmd, args, group, None, None)
        for _ in range(args.reps):
            wall, out, err, peak = run_once(cmd, args, group, wrapper, mem)
            if args.metric:
                v = parse_metric(out, args.metric)
                if v is None:
                    raise RunError("no %s= in output: %s" % (args.metric, one_line(out + "\n" + err) or "empty"))
                values.append(v / args.scale)
            else:
                values.append(wall * 1000.0)
            if peak is not None:
                peaks.append(peak / (1024.0 * 1024.0))
    except RunError as e:
        print("status=error")
        print("error=%s" % one_line(str(e)))
        record["error"] = str(e)
        write_raw(args, record)
        return 1

    print("status=ok")
    print("value=%s" % cell(values))
    record["values"] = values
    if mem:
        print("mem=%s" % cell(peaks))
        print("mem_method=%s" % mem.method)
        record["peak_mib"] = peaks
        record["mem_method"] = mem.method
    write_raw(args, record)
    return 0


def write_raw(args, record):
    if not args.raw:
        return
    try:
        with open(args.raw, "a") as f:
            f.write(json.dumps(record) + "\n")
    except OSError as e:
        sys.stderr.write("measure.py: cannot write %s: %s\n" % (args.raw, e))


if __name__ == "__main__":
    sys.exit(main())
