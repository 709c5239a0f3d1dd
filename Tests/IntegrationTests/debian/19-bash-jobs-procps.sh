# bash background jobs, wait -n, coprocess, FIFOs, PIPESTATUS, and procps ps/pgrep on our own children
set -u
( sleep 0.2; exit 3 ) & a=$!
( exit 4 ) & b=$!
wait "$b"; echo "b -> $?"
wait "$a"; echo "a -> $?"
# One exit at a time: bash's wait -n returns 127 if two jobs end between its
# check for dead jobs and its check for running ones (a race in bash), and
# sleeps only stagger them on a quiet machine. Each job waits for its own
# gate file, opened only after the previous job was reaped.
for i in 1 2 3; do ( while [ ! -e "go$i" ]; do sleep 0.02; done; exit "$i" ) & done
s=0; for i in 1 2 3; do : > "go$i"; wait -n; s=$((s + $?)); done; echo "wait -n sum $s"
rm -f go1 go2 go3
mkfifo gate
( read -r line < gate; echo "child read: $line" ) &
echo "through fifo" > gate
wait
rm gate
coproc UP { tr a-z A-Z; }
cpid=$UP_PID
exec {rd}<&"${UP[0]}" {wr}>&"${UP[1]}"
exec {UP[1]}>&-
echo "coproc data" >&"$wr"
exec {wr}>&-
read -r reply <&"$rd"
wait "$cpid"; st=$?; echo "coproc: $reply status $st"
exec {rd}<&-
seq 1 5 | grep -v 3 | tr '\n' ' ' | sed 's/ $/\n/'; echo "status ${PIPESTATUS[*]}"
sleep 30 & sl=$!
for i in $(seq 2000); do [ "$(ps -o comm= -p "$sl")" = sleep ] && break; done
ps -o comm= -p "$sl"
pgrep -P $$ -x sleep >/dev/null && echo "pgrep found sleep"
ps -o comm= --ppid $$ | grep -c sleep
kill "$sl"; wait "$sl"; echo "killed sleep -> $?"
ps -p "$sl" >/dev/null || echo "sleep gone"
ps -o comm= -p $$
echo "all jobs waited"
