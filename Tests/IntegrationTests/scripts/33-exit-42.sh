# Mid-range exit codes; the script exits 42.
for c in 10 42 64 100 127 128; do
  sh -c "exit $c"; echo "code $c -> $?"
done
f() { return 42; }
f; echo "function return -> $?"
echo "exiting 42"
exit 42
