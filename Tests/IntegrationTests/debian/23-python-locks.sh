# flock and fcntl record locks between processes (python3 fcntl): busy, release, ranges, F_GETLK
python3 - <<'PY'
import fcntl, os, time, struct, functools
print = functools.partial(print, flush=True)
fd = os.open("lockfile", os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
# The parent releases only after the child tried (a pipe, not a sleep: on a
# loaded machine the child may start late).
tried_r, tried_w = os.pipe()
pid = os.fork()
if pid == 0:
    fd2 = os.open("lockfile", os.O_RDWR)
    try:
        fcntl.flock(fd2, fcntl.LOCK_EX | fcntl.LOCK_NB); print("child: flock acquired (wrong)")
    except BlockingIOError:
        print("child: flock busy")
    os.write(tried_w, b"t")
    fcntl.flock(fd2, fcntl.LOCK_EX); print("child: flock after parent released")
    os._exit(0)
os.read(tried_r, 1); time.sleep(0.05); fcntl.flock(fd, fcntl.LOCK_UN); os.waitpid(pid, 0)
fcntl.lockf(fd, fcntl.LOCK_EX, 10, 0)
pid = os.fork()
if pid == 0:
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 0); print("child: lockf acquired (wrong)")
    except OSError as e:
        print("child: lockf busy", e.errno)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 10, 20); print("child: other range ok")
    r = fcntl.fcntl(fd, fcntl.F_GETLK, struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 5, 0))
    t, w, s, l, p = struct.unpack("hhqqi", r); print("getlk:", t, s, l, p == os.getppid())
    os._exit(0)
os.waitpid(pid, 0); print("done")
PY
ls
