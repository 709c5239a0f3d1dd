# The shell sends itself SIGSEGV: the harness sees 139.
echo "about to crash"
kill -SEGV $$
echo "never printed"
