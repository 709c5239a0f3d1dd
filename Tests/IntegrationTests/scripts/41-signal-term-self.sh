# Default SIGTERM disposition ends the shell: 143. Child signal statuses first.
for s in HUP INT QUIT ABRT USR1 USR2 ALRM TERM; do
  sh -c "kill -$s \$\$" 2>/dev/null
  echo "$s -> $?"
done
kill -l 9
kill -l 15
kill -TERM $$
echo "never printed"
