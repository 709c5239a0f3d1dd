# ps: only look at our own children, so the host's processes never matter.
sleep 30 &
p=$!
# wait until the background child has exec'd sleep (its comm becomes "sleep")
i=0
while [ $i -lt 500 ]; do
  c=$(ps -o pid,comm | awk -v p=$p '$1 == p {print $2}')
  [ "$c" = sleep ] && break
  i=$((i + 1)); usleep 10000
done
echo "sleep visible: $c"
ps -o pid,ppid,comm > ps.out
awk -v me=$$ '$2 == me {print $3}' ps.out | sort
grep -c "^ *$$ " ps.out
head -n 1 ps.out | awk '{print $1, $2, $3}'
kill $p
wait $p 2>/dev/null
ps -o pid,comm | awk -v p=$p '$1 == p' | wc -l
rm ps.out
