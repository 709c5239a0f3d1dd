# SCM_RIGHTS: a pipe (and a regular file and a socket) passed between two
# processes over a unix socket; SCM_CREDENTIALS, SO_PEERCRED; unconnected
# datagram sockets with addresses; shutdown.
import os, socket, struct, sys
parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
pid = os.fork()
if pid == 0:
    parent.close()
    msg, fds, flags, addr = socket.recv_fds(child, 100, 8)
    assert msg == b"take these" and len(fds) == 3, (msg, fds)
    r, f, s = fds
    data = os.read(r, 100)                      # the pipe's read end
    os.lseek(f, 0, 0); text = os.read(f, 100)   # the regular file
    sock = socket.socket(fileno=s)
    sock.sendall(b"via passed socket: " + data + b" / " + text)
    os._exit(0)
child.close()
r, w = os.pipe()
fd = os.open("/tmp/passed.txt", os.O_RDWR | os.O_CREAT, 0o600); os.write(fd, b"file content")
x, y = socket.socketpair()
socket.send_fds(parent, [b"take these"], [r, fd, y.fileno()])
os.close(r); os.close(fd); y.close()              # the receiver keeps them alive
os.write(w, b"through the pipe"); os.close(w)
got = x.recv(200)
assert got == b"via passed socket: through the pipe / file content", got
_, st = os.waitpid(pid, 0); assert st == 0
# SO_PEERCRED on a socketpair and on a connection; SCM_CREDENTIALS.
a, b = socket.socketpair()
pidc, uid, gid = struct.unpack("3i", a.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
assert (pidc, uid, gid) == (os.getpid(), os.geteuid(), os.getegid()), (pidc, uid, gid)
b.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
a.sendmsg([b"cred"])
msg, anc, flags, _ = b.recvmsg(10, socket.CMSG_SPACE(12))
assert anc and anc[0][1] == socket.SCM_CREDENTIALS and struct.unpack("3i", anc[0][2]) == (os.getpid(), os.geteuid(), os.getegid()), anc
# Datagram sockets bound to names, sendto/recvfrom with addresses.
d1 = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); d1.bind("\0moat-d1")
d2 = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); d2.bind("/tmp/d2.sock")
d2.sendto(b"to d1", "\0moat-d1")
data, addr = d1.recvfrom(100)
assert data == b"to d1" and addr == "/tmp/d2.sock", (data, addr)
d1.sendto(b"back", addr)
data, addr = d2.recvfrom(100)
assert data == b"back" and addr in ("\0moat-d1", b"\0moat-d1"), (data, addr)
unix = open("/proc/net/unix").read()
assert "@moat-d1" in unix and "/tmp/d2.sock" in unix, unix
# SO_RCVTIMEO on a unix socket: a blocking recv gives up with EAGAIN.
import errno, time
x2, y2 = socket.socketpair()
x2.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 200000))
assert struct.unpack("ll", x2.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, 16)) == (0, 200000)
t0 = time.monotonic()
try: x2.recv(10); raise SystemExit("no timeout")
except OSError as e: assert e.errno == errno.EAGAIN, e
assert 0.15 < time.monotonic() - t0 < 2, time.monotonic() - t0
# shutdown: the peer reads end of file.
a.shutdown(socket.SHUT_WR)
assert b.recv(10) == b""
print("OK rights creds dgram shutdown")
