# Many concurrent background jobs, each with its own exit status.
for i in $(seq 1 20); do
  ( exit $i ) &
  eval "pid$i=$!"
done
: > statuses.txt
for i in $(seq 1 20); do
  eval "wait \$pid$i"; echo "job $i -> $?" >> statuses.txt
done
sort -k2 -n statuses.txt | awk '$2 != $4 {bad++} {s += $4} END {print NR, "jobs, status sum", s, "mismatches", bad + 0}'
for i in $(seq 1 10); do ( echo "$i" > job$i.out ) & done
wait
cat job*.out | sort -n | tr '\n' ' '; echo
rm job*.out
