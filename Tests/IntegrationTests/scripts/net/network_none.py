# --network none: only loopback.
import errno, socket
dev = open("/proc/net/dev").read().split("\n")[2:]
names = [l.split(":")[0].strip() for l in dev if l.strip()]
assert names == ["lo"], names
s = socket.socket(); s.settimeout(2)
try:
    s.connect(("10.1.2.3", 80)); raise SystemExit("reached outside")
except OSError as e:
    assert e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH), e
import fcntl, struct
ifs = fcntl.ioctl(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), 0x8915, struct.pack("16s24x", b"lo"))
assert socket.inet_ntoa(ifs[20:24]) == "127.0.0.1"
print("OK only", names)
