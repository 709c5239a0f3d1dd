# A USR1 handler runs when the shell signals itself.
n=0
trap 'n=$((n + 1)); echo "got USR1 #$n"' USR1
kill -USR1 $$
echo "after first"
kill -USR1 $$
kill -s USR1 $$
echo "count=$n"
trap - USR1
trap 'echo usr2 handled' USR2
kill -USR2 $$
trap '' USR1
kill -USR1 $$
echo "ignored USR1, still alive"
