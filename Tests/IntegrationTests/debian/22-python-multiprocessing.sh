# python3 multiprocessing (fork context): Process + Queue, Pool.map, shared Value with a Lock
python3 - <<'PY'
import os, multiprocessing as mp
def sq(x): return x * x
def putter(q, parent): q.put(("child", os.getppid() == parent))
def bump(v):
    for _ in range(100):
        with v.get_lock():
            v.value += 1
if __name__ == "__main__":
    ctx = mp.get_context("fork")
    q = ctx.Queue(); pr = ctx.Process(target=putter, args=(q, os.getpid())); pr.start()
    print("mp queue:", q.get(timeout=20)); pr.join(); print("mp exit:", pr.exitcode)
    with ctx.Pool(2) as pool:
        print("mp pool:", sum(pool.map(sq, range(100))))
    v = ctx.Value("i", 0)
    ps = [ctx.Process(target=bump, args=(v,)) for _ in range(4)]
    for p in ps: p.start()
    for p in ps: p.join()
    print("shared value:", v.value)
PY
