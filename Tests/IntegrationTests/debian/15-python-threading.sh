# python3 threading: 8 threads + Lock summing, Condition/Event/Queue, ThreadPoolExecutor
python3 - <<'PY'
import threading, queue, concurrent.futures
total = 0
lock = threading.Lock()
def work(start):
    global total
    for i in range(start, start + 10000):
        with lock:
            total += i
threads = [threading.Thread(target=work, args=(k * 10000,)) for k in range(8)]
for t in threads: t.start()
for t in threads: t.join()
print("sum", total, total == sum(range(80000)))
q = queue.Queue()
done = threading.Event()
def producer():
    for i in range(100): q.put(i)
    q.put(None)
def consumer(out):
    while (item := q.get()) is not None:
        out.append(item * 2)
    done.set()
out = []
c = threading.Thread(target=consumer, args=(out,)); p = threading.Thread(target=producer)
c.start(); p.start(); p.join(); c.join()
print("queue", done.is_set(), len(out), sum(out))
cond = threading.Condition(); state = {"n": 0}
def waiter():
    with cond:
        cond.wait_for(lambda: state["n"] == 5)
        state["seen"] = state["n"]
w = threading.Thread(target=waiter); w.start()
for _ in range(5):
    with cond:
        state["n"] += 1; cond.notify_all()
w.join(); print("condition saw", state["seen"])
b = threading.Barrier(4); arrivals = []
def at_barrier(i):
    arrivals.append(i); b.wait()
ts = [threading.Thread(target=at_barrier, args=(i,)) for i in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("barrier", sorted(arrivals))
def square(x): return x * x
with concurrent.futures.ThreadPoolExecutor(max_workers=8) as ex:
    print("pool map", sum(ex.map(square, range(1000))))
    futs = {ex.submit(square, i): i for i in range(20)}
    print("pool futures", sorted(f.result() for f in concurrent.futures.as_completed(futs))[-3:])
local = threading.local()
def tl(i, res):
    local.v = i; res[i] = local.v
res = {}
ts = [threading.Thread(target=tl, args=(i, res)) for i in range(8)]
for t in ts: t.start()
for t in ts: t.join()
print("thread-local", res == {i: i for i in range(8)}, threading.active_count())
PY
