# python3 signals (handler for SIGUSR1 via os.kill, SIGALRM via alarm/setitimer, masks), monotonic clock ordering
python3 - <<'PY'
import os, signal, time
got = []
def handler(signum, frame):
    got.append(signal.Signals(signum).name)
signal.signal(signal.SIGUSR1, handler)
os.kill(os.getpid(), signal.SIGUSR1)
print("after kill:", got)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
signal.signal(signal.SIGUSR2, handler)
os.kill(os.getpid(), signal.SIGUSR2)
print("blocked, pending:", sorted(s.name for s in signal.sigpending()), got)
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR2})
print("unblocked:", got)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
signal.setitimer(signal.ITIMER_REAL, 0.05)
info = signal.sigtimedwait({signal.SIGALRM}, 20)
print("alarm:", signal.Signals(info.si_signo).name if info else None, "handler not run:", got[-1])
old = signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.kill(os.getpid(), signal.SIGTERM)
print("ignored TERM, old handler default:", old == signal.SIG_DFL)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
t = [time.monotonic() for _ in range(1000)]
print("monotonic non-decreasing:", all(a <= b for a, b in zip(t, t[1:])))
a = time.monotonic(); time.sleep(0.05); b = time.monotonic()
print("sleep advanced:", b - a >= 0.05)
n1 = time.monotonic_ns(); p1 = time.perf_counter_ns(); c1 = time.process_time()
print("ns clocks positive:", n1 > 0 and p1 > 0 and c1 >= 0)
print("gmtime:", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(86400 * 365)))
print("realtime sane:", time.time() > 1.6e9)
print("valid signals >= 31:", len(signal.valid_signals()) >= 31)
PY
