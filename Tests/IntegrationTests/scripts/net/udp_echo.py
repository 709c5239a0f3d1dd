# UDP echo between two processes; addresses reported by recvfrom; ICMP echo socket on loopback.
import os, socket, sys
srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
srv.bind(("127.0.0.1", 0))
port = srv.getsockname()[1]
pid = os.fork()
if pid == 0:
    for _ in range(50):
        data, addr = srv.recvfrom(65535)
        srv.sendto(data.upper(), addr)
    os._exit(0)
srv.close()
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(5)
for i in range(50):
    msg = b"ping %d " % i + b"x" * (i * 100)
    c.sendto(msg, ("127.0.0.1", port))
    data, addr = c.recvfrom(65535)
    assert data == msg.upper() and addr == ("127.0.0.1", port), (data[:20], addr)
os.waitpid(pid, 0)
# sendmmsg/recvmmsg-style burst through a connected socket, FIONREAD.
a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); a.bind(("127.0.0.1", 0))
b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); b.connect(a.getsockname())
b.send(b"12345")
import fcntl, termios, struct, select
select.select([a], [], [], 5)
n = struct.unpack("i", fcntl.ioctl(a, termios.FIONREAD, b"\0\0\0\0"))[0]
assert n == 5, n
# ICMP echo ("ping") socket.
icmp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
icmp.settimeout(5)
icmp.sendto(struct.pack("!BBHHH", 8, 0, 0, 0, 1) + b"moat", ("127.0.0.1", 0))
reply, _ = icmp.recvfrom(1500)
assert reply[0] == 0 and reply[-4:] == b"moat", reply
# sendmmsg / recvmmsg: eight datagrams in one call each way.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
class iovec(ctypes.Structure): _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
class msghdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(iovec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t), ("flags", ctypes.c_int)]
class mmsghdr(ctypes.Structure): _fields_ = [("hdr", msghdr), ("len", ctypes.c_uint32)]
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rx.bind(("127.0.0.1", 0))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); tx.connect(rx.getsockname())
N = 8
out = [ctypes.create_string_buffer(b"datagram %d" % i) for i in range(N)]
iovs = (iovec * N)(*[iovec(ctypes.cast(b, ctypes.c_void_p), len(b.value)) for b in out])
msgs = (mmsghdr * N)()
for i in range(N): msgs[i].hdr.iov = ctypes.pointer(iovs[i]); msgs[i].hdr.iovlen = 1
assert libc.sendmmsg(tx.fileno(), msgs, N, 0) == N
assert all(msgs[i].len == len(out[i].value) for i in range(N))
inb = [ctypes.create_string_buffer(64) for _ in range(N)]
riovs = (iovec * N)(*[iovec(ctypes.cast(b, ctypes.c_void_p), 64) for b in inb])
rmsgs = (mmsghdr * N)()
for i in range(N): rmsgs[i].hdr.iov = ctypes.pointer(riovs[i]); rmsgs[i].hdr.iovlen = 1
select.select([rx], [], [], 5)
got = libc.recvmmsg(rx.fileno(), rmsgs, N, 0x10000, None)  # MSG_WAITFORONE
assert got >= 1, ctypes.get_errno()
for i in range(got):
    assert inb[i].raw[:rmsgs[i].len] == b"datagram %d" % i, inb[i].raw[:rmsgs[i].len]
print("OK udp: 50 echoes, icmp echo, sendmmsg/recvmmsg", got)
