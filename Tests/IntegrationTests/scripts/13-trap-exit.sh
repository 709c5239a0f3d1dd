# EXIT trap runs on normal exit and keeps the exit status.
cleanup() { echo "cleanup running (status $1)"; rm -f tmpfile; }
trap 'cleanup $?' EXIT
echo data > tmpfile
echo "tmpfile exists: $(cat tmpfile)"
f() { echo "in function"; return 1; }
f
echo "exiting with 3"
exit 3
