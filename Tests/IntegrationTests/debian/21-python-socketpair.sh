# python3 AF_UNIX sockets: socketpair stream and datagram, bulk transfer, shutdown/EOF
python3 - <<'PY'
import socket
a, b = socket.socketpair()
a.sendall(b"hello over unix socket")
print("socketpair:", b.recv(100).decode(), a.family.name, a.type.name)
b.sendall(b"x" * 100000)
got = 0
while got < 100000:
    got += len(a.recv(65536))
print("bulk:", got)
a.shutdown(socket.SHUT_WR); print("after shutdown ->", b.recv(10))
a.close(); b.close()
c, d = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
c.send(b"one"); c.send(b"two")
print("dgram:", d.recv(10), d.recv(10))
PY
