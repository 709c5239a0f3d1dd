# sleep variants and timeout; only orderings that are guaranteed are printed.
sleep 0
sleep 0.1
usleep 1000
echo "slept"
timeout 1 sleep 10; echo "timeout status=$?"
timeout 5 true; echo "no timeout status=$?"
timeout 5 sh -c 'exit 4'; echo "inner status=$?"
( sleep 0.2; echo "background done" > bg.txt ) &
wait $!; echo "wait status=$?"
cat bg.txt
sleep 1 & sleep 1 & wait; echo "both done"
