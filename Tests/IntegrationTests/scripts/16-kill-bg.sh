# Killing a background sleep yields 128+signal from wait.
# (Background jobs of a non-interactive shell ignore INT/QUIT, so not those.)
# ash prints "Terminated"/"Killed" only if `wait` is what reaps the job; if
# the job died and was reaped before `wait` ran, it prints nothing. That
# race exists natively too (it depends on how fast the shell reaches
# `wait`), so the messages are not compared: only the statuses.
exec 2>/dev/null
sleep 100 &
p=$!
kill $p
wait $p; echo "TERM status=$?"
sleep 100 &
p=$!
kill -9 $p
wait $p; echo "KILL status=$?"
sleep 100 &
p=$!
kill -HUP $p
wait $p; echo "HUP status=$?"
sleep 100 &
p=$!
kill -0 $p && echo "kill -0 ok"
kill -USR1 $p
wait $p; echo "USR1 status=$?"
kill -0 $p 2>/dev/null || echo "gone"
