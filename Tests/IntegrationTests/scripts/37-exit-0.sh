# A script whose last command fails under `|| true` still exits 0.
false || true
sh -c 'exit 3' || echo "recovered from 3"
set -e
true
if false; then echo no; fi
false && echo no
echo "done"
