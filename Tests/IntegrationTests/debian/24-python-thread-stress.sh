# Stress: 64 threads in semaphore (futex) ping-pong pairs, then 1,000 short-lived threads; no hang, no leak
python3 - <<'PY'
import threading, time
PAIRS, ROUNDS = 32, 50
done = []
def player(mine, other, n):
    for _ in range(n):
        mine.acquire(); other.release()
def pair(k):
    a, b = threading.Semaphore(1), threading.Semaphore(0)
    x = threading.Thread(target=player, args=(a, b, ROUNDS)); y = threading.Thread(target=player, args=(b, a, ROUNDS))
    return [x, y]
ts = [t for k in range(PAIRS) for t in pair(k)]
t0 = time.monotonic()
for t in ts: t.start()
for t in ts: t.join()
print("pingpong threads", len(ts), "rounds", ROUNDS)
count = [0]; lock = threading.Lock()
def short():
    with lock: count[0] += 1
for _ in range(1000):
    t = threading.Thread(target=short); t.start(); t.join()
print("short-lived", count[0], threading.active_count())
PY
