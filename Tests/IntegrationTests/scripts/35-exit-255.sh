# High exit codes and wrap-around; the script exits 255.
for c in 129 200 254 255 256 257 511; do
  sh -c "exit $c"; echo "code $c -> $?"
done
(exit 255); echo "subshell 255 -> $?"
exit 255
