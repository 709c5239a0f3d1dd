# Garbage into every socket call, on live inet and unix sockets: the
# Sentry must answer errors, never die (fixed seed, so runs repeat).
import ctypes, os, random, socket
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.syscall.argtypes = [ctypes.c_long] + [ctypes.c_ulong] * 6
rng = random.Random(5)
buf = ctypes.create_string_buffer(8 << 20)  # bigger than any one transfer: the fuzzer must not corrupt itself
base = ctypes.addressof(buf)
calls = [41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 288, 299, 307, 16]
def socks():
    out = [socket.socket(), socket.socket(socket.AF_INET6), socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
           socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)]
    out += list(socket.socketpair()) + list(socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET))
    for s in out: s.setblocking(False)
    return out
def arg():
    k = rng.randrange(6)
    if k == 0: return rng.randrange(0, 64)
    if k == 1: return base + rng.randrange(0, 4000)
    if k == 2: return rng.getrandbits(64)
    if k == 3: return rng.choice([0, 1, 2, 10, 16, 28, 110, 128, 4096, 0xffffffff, 2**63])
    if k == 4: return rng.choice([0x40, 0x4000, 0x2, 0x100, 0x40000000, 0x800])  # MSG_* flags
    return 0
live = socks()
for i in range(20000):
    if i % 500 == 0:
        for s in live: s.close()
        live = socks()
    for j in range(0, 4096, 8):
        ctypes.memmove(base + j, rng.getrandbits(64).to_bytes(8, "little"), 8)
    nr = rng.choice(calls)
    fd = rng.choice(live).fileno()
    a = [fd, arg(), arg(), arg(), arg(), arg()]
    if nr in (41, 53): a[0] = rng.choice([1, 2, 10, 16, 17, rng.randrange(64)])
    if nr == 16: a[1] = rng.choice([0x541B, 0x5411, 0x8905, 0x8912, 0x8915, 0x8913, 0x8933, rng.getrandbits(32)])
    r = libc.syscall(nr, *[x & 0xffffffffffffffff for x in a])
    if i % 50 == 49:  # fds that accept or SCM_RIGHTS may have installed
        keep = {s.fileno() for s in live}
        for fd2 in range(3, 300):
            if fd2 not in keep:
                try: os.close(fd2)
                except OSError: pass
print("OK 20000 garbage socket calls")
