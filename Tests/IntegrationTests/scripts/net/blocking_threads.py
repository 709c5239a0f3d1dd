# A thread blocked in accept/recv on an inet socket must not stall the other
# threads of the process (the Sentry waits with its lock released).
import socket, threading, time
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
got = []
def server():
    c, _ = l.accept()            # blocks until the main thread connects
    got.append(c.recv(100))      # blocks until the main thread sends
t = threading.Thread(target=server); t.start()
time.sleep(0.3)
# Still running while the other thread is blocked in accept.
busy = sum(i for i in range(100000))
c = socket.create_connection(l.getsockname())
time.sleep(0.3)                  # the server thread is blocked in recv
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
u.settimeout(0.2)
try: u.recvfrom(10); raise SystemExit("no timeout")
except socket.timeout: pass      # SO_RCVTIMEO-style timeouts work meanwhile
c.sendall(b"unblocked")
t.join(5)
assert got == [b"unblocked"], got
# Edge-triggered epoll on an inet socket: one report per edge, and a wait
# with the edge already reported times out (instead of spinning).
import select
s2 = socket.socket(); s2.bind(("127.0.0.1", 0)); s2.listen()
p = socket.create_connection(s2.getsockname()); q, _ = s2.accept()
p.send(b"x")
ep = select.epoll(); ep.register(q, select.EPOLLIN | select.EPOLLET)
assert ep.poll(2) == [(q.fileno(), select.EPOLLIN)]
t0 = time.monotonic(); assert ep.poll(0.3) == []; assert time.monotonic() - t0 >= 0.25
q.recv(10); assert ep.poll(0.1) == []
p.send(b"y"); assert ep.poll(2) == [(q.fileno(), select.EPOLLIN)]
print("OK blocking calls do not stall other threads; edge-triggered epoll")
