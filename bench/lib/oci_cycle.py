#!/usr/bin/env python3
"""One OCI lifecycle of a trivial container, as an engine drives it:

    oci_cycle.py RUNTIME ROOT BUNDLE ID [GLOBAL FLAGS...]

`RUNTIME [flags] --root ROOT create --bundle BUNDLE --pid-file F ID`, then
`start ID`, then wait for the container's process (the pid in F) to end,
then `delete ID`. Exits non-zero, with the failing step on stderr, if any
step fails. bench/oci.sh times the whole cycle with measure.py.
"""
import os
import subprocess
import sys
import tempfile
import time


def step(argv):
    # stderr goes to a file, not a pipe: the container inherits create's
    # stdio and outlives it, so a pipe would stay open until it exits.
    with tempfile.TemporaryFile() as err:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        if r.returncode != 0:
            err.seek(0)
            msg = err.read().decode(errors="replace").strip()[-300:]
            sys.stderr.write(f"{' '.join(argv[:4])}...: exit {r.returncode}: {msg}\n")
            sys.exit(1)


def alive(pid):
    # Not our child (the runtime's create made it): poll its state.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def main():
    rt, root, bundle, cid = sys.argv[1:5]
    flags = sys.argv[5:]
    base = [rt] + flags + ["--root", root]
    pidfile = os.path.join(root, cid + ".pid")
    step(base + ["create", "--bundle", bundle, "--pid-file", pidfile, cid])
    with open(pidfile) as f:
        pid = int(f.read().strip())
    step(base + ["start", cid])
    deadline = time.monotonic() + 30
    while alive(pid):
        if time.monotonic() > deadline:
            sys.stderr.write("the container did not exit within 30 s\n")
            subprocess.run(base + ["delete", "--force", cid])
            sys.exit(1)
        time.sleep(0.0005)
    step(base + ["delete", cid])
    os.unlink(pidfile)


if __name__ == "__main__":
    main()
