# bash set -e, ERR/EXIT/RETURN traps, pipefail and subshell exit statuses
trap 'echo "EXIT trap, status $?"' EXIT
( set -e; echo before; false; echo "not reached" ); echo "subshell status $?"
( set -e; false || echo "|| protects"; if false; then :; fi; echo "if protects" )
( set -e; trap 'echo "ERR at line $LINENO"' ERR; true; false; echo "not reached" ); echo "err-trap subshell $?"
set -o pipefail
false | true; echo "pipefail status $?"
set +o pipefail
false | true; echo "no pipefail status $?"
true | false | true; echo "PIPESTATUS ${PIPESTATUS[*]}"
f() { trap 'echo "RETURN from f"' RETURN; return 3; }
f; echo "f returned $?"
trap - RETURN
( exit 42 ); echo "exit 42 -> $?"
( kill -TERM $BASHPID ); echo "killed subshell -> $?"
( trap 'echo "USR1 caught"; exit 7' USR1; kill -USR1 $BASHPID; sleep 5 ); echo "usr1 subshell -> $?"
set -e
echo "last line"
exit 5
