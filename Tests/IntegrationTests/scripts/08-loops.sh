# for / while / until loops with break and continue.
for i in 1 2 3 4 5; do
  [ $i -eq 2 ] && continue
  [ $i -eq 5 ] && break
  echo "for $i"
done
i=0
while [ $i -lt 3 ]; do i=$((i + 1)); echo "while $i"; done
j=3
until [ $j -eq 0 ]; do echo "until $j"; j=$((j - 1)); done
for a in x y; do
  for b in 1 2 3; do
    [ $b -eq 2 ] && continue 2
    echo "$a$b"
  done
done
for k in $(seq 1 5); do :; done; echo "k=$k"
set -- p q r
for arg; do echo "arg $arg"; done
n=0; while :; do n=$((n+1)); [ $n -ge 1000 ] && break; done; echo "n=$n"
