# python's http.server served and fetched inside one sandbox (two processes).
import os, subprocess, sys, time, urllib.request
os.makedirs("/tmp/www", exist_ok=True)
body = b"moat says hello\n" * 1000
open("/tmp/www/index.html", "wb").write(body)
srv = subprocess.Popen([sys.executable, "-m", "http.server", "8000", "--bind", "127.0.0.1", "--directory", "/tmp/www"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    for _ in range(200):
        try:
            got = urllib.request.urlopen("http://127.0.0.1:8000/index.html", timeout=5).read()
            break
        except OSError:
            time.sleep(0.05)
    else:
        sys.exit("server never answered")
    assert got == body, (len(got), len(body))
    # /proc/net/tcp from the sandbox's namespace: the server's listening socket.
    tcp = open("/proc/net/tcp").read().split("\n")[1:]
    assert any(":1F40 " in l.split()[1] + " " and l.split()[3] == "0A" for l in tcp if l.strip()), tcp
    # IPv6 loopback too.
    import socket
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.bind(("::1", 0)); s.listen()
    c = socket.create_connection(("::1", s.getsockname()[1]))
    a, peer = s.accept()
    c.sendall(b"v6"); assert a.recv(2) == b"v6"
    print("OK http", len(got), "v6", peer[0])
finally:
    srv.terminate(); srv.wait()
