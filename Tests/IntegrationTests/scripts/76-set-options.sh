# set -u, set -x and set -e reporting.
set -x
echo traced
x=5
set +x
sh -c 'set -u; echo "$undefined_var"; echo no' 2>&1 | sed 's/^sh: //'
echo "set -u status=$(sh -c 'set -u; : $undefined_var' 2>/dev/null; echo $?)"
sh -c 'set -e; false; echo "not printed"'; echo "set -e status=$?"
sh -c 'set -e; false || true; echo "or-list survives"'
sh -c 'set -e; if false; then :; fi; echo "if survives"'
set -- 1 2 3
echo "$-" | grep -q x || echo "xtrace is off"
