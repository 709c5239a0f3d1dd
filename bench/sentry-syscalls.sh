#!/bin/bash
# bench/sentry-syscalls.sh OUT MOAT-COMMAND...: counts the host syscalls of
# a running Sentry (strace -c -S calls into OUT; the command's own output
# into OUT.app). strace attaches to the Sentry's threads $DELAY seconds
# (default 0.4) after `moat sentry` appears, so start-up is left out; a
# Sentry thread created later (a new application process) is not counted,
# so give the measured loop time to start (say `sh -c 'sleep 1; PROG'`
# attaches before PROG, or a long PROG with DELAY=1 attaches during it).
# It attaches with -p per thread, not -f: the Sentry ptraces its stubs,
# and strace following the Sentry's forks would take them from it.
# Example (per-call figures of a 1 MiB read loop):
#   bench/sentry-syscalls.sh /tmp/st.txt moat run --platform fast --rootfs ROOT -- \
#       sh -c 'sleep 1; /bench/fsops seqread /bench/data'
set -u
out=$1; shift
"$@" > "$out.app" 2>&1 &
top=$!
s=
for _ in $(seq 200); do s=$(pgrep -P $top -f "moat sentry" | head -1); [ -n "$s" ] && break; sleep 0.05; done
[ -n "$s" ] || { echo "no Sentry under pid $top" >&2; wait $top; exit 1; }
sleep "${DELAY:-0.4}"
args=(); for t in /proc/$s/task/*; do args+=(-p "${t##*/}"); done
strace -c -S calls -o "$out" "${args[@]}" 2>/dev/null &
st=$!
wait $top
sleep 0.3
kill -INT $st 2>/dev/null
wait $st 2>/dev/null
exit 0
