# Unsupported families, types and options: Linux's errors.
import errno, socket
def expect(e, f):
    try: f()
    except OSError as x:
        assert x.errno == e, (x, e); return
    raise SystemExit("no error, expected %s" % errno.errorcode[e])
# Netlink: Moat offers NETLINK_ROUTE and NETLINK_KOBJECT_UEVENT, SOCK_RAW or SOCK_DGRAM only.
expect(errno.EPROTONOSUPPORT, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 3))  # no such protocol (Linux too)
expect(errno.ESOCKTNOSUPPORT, lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_STREAM, 0))
expect(errno.EAFNOSUPPORT, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
expect(errno.EAFNOSUPPORT, lambda: socket.socket(40, socket.SOCK_STREAM, 0))  # AF_VSOCK
s = socket.socket()
expect(errno.ENOPROTOOPT, lambda: s.setsockopt(socket.SOL_SOCKET, 9999, 1))
expect(errno.ENOPROTOOPT, lambda: s.getsockopt(socket.IPPROTO_TCP, 9999))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
assert s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
six = socket.socket(socket.AF_INET6); six.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
def raw_connect(sock, addr):
    if libc.connect(sock.fileno(), addr, len(addr)) != 0:
        raise OSError(ctypes.get_errno(), "connect")
expect(errno.EAFNOSUPPORT, lambda: raw_connect(s, b"\x0a\x00" + b"\0" * 26))   # AF_INET6 address, AF_INET socket
expect(errno.EINVAL, lambda: raw_connect(s, b"\x02\x00\x00"))                  # too short
expect(errno.ECONNREFUSED, lambda: socket.create_connection(("127.0.0.1", 1)))
# Non-blocking connect answers EINPROGRESS, SO_ERROR tells the outcome.
n = socket.socket(); n.setblocking(False)
assert n.connect_ex(("127.0.0.1", 1)) in (errno.EINPROGRESS, errno.ECONNREFUSED)
import select; select.select([], [n], [], 5)
assert n.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED
print("OK bad input")
