# The shell sends itself SIGSEGV: the harness sees 139.
echo "about to crash"
echo "partial" > before-crash.txt
kill -SEGV $$
echo "never printed"
echo "never" > never.txt
