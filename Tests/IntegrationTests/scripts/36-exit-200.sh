# exit inside a function and a trap; the script exits 200.
trap 'echo "exit trap sees $?"' EXIT
f() { echo "in f"; exit 200; }
f
echo "not reached"
