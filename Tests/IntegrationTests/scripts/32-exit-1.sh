# Exit codes 0..9 from subshells; the script itself exits 1.
for c in 0 1 2 3 4 5 6 7 8 9; do
  (exit $c); echo "code $c -> $?"
done
sh -c 'exit 1'; echo "sh -c exit 1 -> $?"
false; echo "false -> $?"
true; echo "true -> $?"
exit 1
