# The shell kills itself with SIGKILL: the harness sees 137.
echo "before"
echo "partial" > partial.txt
kill -9 $$
echo "never printed"
echo "never" > never.txt
