# TERM and INT handlers, and restoring defaults in a child shell.
trap 'echo caught TERM' TERM
trap 'echo caught INT' INT
kill -TERM $$
kill -INT $$
kill $$
echo "survived"
trap - TERM
sh -c 'trap "echo child caught HUP; exit 11" HUP; kill -HUP $$; echo unreachable'
echo "child status=$?"
sh -c 'kill -TERM $$; echo unreachable' 2>/dev/null
echo "child killed by TERM status=$?"
