# eval, sourcing files with `.`, command -v and type.
cmd='echo evaluated $((6 * 7))'
eval "$cmd"
var=name; eval "$var=value"; echo "name=$name"
cat > lib.sh <<'EOT'
libvar=from-lib
libfunc() { echo "libfunc called with $1"; }
EOT
. ./lib.sh
echo "$libvar"
libfunc arg
command -v ls
command -v libfunc
command -v nonexistent-cmd || echo "not found by command -v"
type echo | head -n 1
set -- x y; eval 'echo "last arg: ${'$#'}"'
