# 200 concurrent TCP connections to an echo server in another process of the
# same sandbox; every byte must come back.
import asyncio, hashlib, os, socket, sys
N, SIZE = 200, 64 * 1024
lsock = socket.socket(); lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", 0)); lsock.listen(512)
port = lsock.getsockname()[1]
pid = os.fork()
if pid == 0:
    async def echo(r, w):
        while data := await r.read(65536):
            w.write(data); await w.drain()
        w.close()
    async def serve():
        srv = await asyncio.start_server(echo, sock=lsock)
        await srv.serve_forever()
    asyncio.run(serve())
    os._exit(0)
lsock.close()
async def client(i):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    payload = os.urandom(SIZE)
    async def sender():
        for off in range(0, SIZE, 4096):
            w.write(payload[off:off + 4096]); await w.drain()
        w.write_eof()
    t = asyncio.create_task(sender())
    got = await r.readexactly(SIZE)
    await t
    w.close()
    return hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
async def main():
    return await asyncio.gather(*(client(i) for i in range(N)))
res = asyncio.run(main())
os.kill(pid, 9); os.waitpid(pid, 0)
bad = res.count(False)
assert bad == 0, f"{bad} connections lost bytes"
print(f"OK {N} connections x {SIZE} bytes")
