# python3 readiness APIs: os.pipe2 flags, select, poll, epoll (selectors), eventfd
python3 - <<'PY'
import os, select, selectors
r, w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
print("pipe2 flags:", os.get_blocking(r) is False, os.get_inheritable(r) is False)
try:
    os.read(r, 10)
except BlockingIOError:
    print("empty nonblocking read -> EAGAIN")
print("select idle:", select.select([r], [w], [], 0)[:2] == ([], [w]))
os.write(w, b"ping")
print("select:", select.select([r], [], [], 1)[0] == [r])
p = select.poll(); p.register(r, select.POLLIN)
print("poll:", p.poll(1000) == [(r, select.POLLIN)])
sel = selectors.DefaultSelector()
print("selector:", type(sel).__name__)
sel.register(r, selectors.EVENT_READ, "pipe")
print("epoll ready:", [k.data for k, ev in sel.select(1)])
print("read:", os.read(r, 10))
print("epoll idle:", sel.select(0.05))
os.close(w)
print("hangup:", [k.data for k, ev in sel.select(1)], os.read(r, 10))
fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
os.eventfd_write(fd, 3); os.eventfd_write(fd, 4)
print("eventfd poll:", select.select([fd], [], [], 1)[0] == [fd])
print("eventfd:", os.eventfd_read(fd))
try:
    os.eventfd_read(fd)
except BlockingIOError:
    print("eventfd drained -> EAGAIN")
PY
