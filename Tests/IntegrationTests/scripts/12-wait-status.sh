# `wait $!` returns the exit status of the waited-for job.
( exit 7 ) &
p=$!
wait $p; echo "wait exit7=$?"
false &
wait $!; echo "wait false=$?"
true &
wait $!; echo "wait true=$?"
sh -c 'exit 200' &
wait $!; echo "wait 200=$?"
( sleep 0.1; exit 3 ) & a=$!
( exit 4 ) & b=$!
wait $b; echo "b=$?"
wait $a; echo "a=$?"
wait; echo "wait-all=$?"
