# set -e aborts at the first failing simple command; the script exits 3.
set -e
echo "start"
f() { echo "in f"; }
f
sh -c 'exit 3'
echo "not reached"
