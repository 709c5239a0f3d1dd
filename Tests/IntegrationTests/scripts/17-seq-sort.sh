# A large pipeline: 200k lines through sort.
seq 1 200000 | sort -rn | head -n 5
seq 1 200000 | sort -n | tail -n 3
seq 1 200000 | wc -l
seq 1 200000 | sort | head -n 3
seq 200000 -1 1 | sort -n | md5sum
seq 1 200000 | awk '{s += $1} END {print s}'
