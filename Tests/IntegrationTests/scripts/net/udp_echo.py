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
print("OK udp 50 echoes, icmp echo")
