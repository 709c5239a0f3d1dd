# bash functions: local scope, recursion, return codes, nameref, declare -f
set -u
counter=0
bump() { local step=${1:-1}; counter=$((counter + step)); }
fact() { local n=$1; if ((n <= 1)); then echo 1; else echo $((n * $(fact $((n - 1))))); fi; }
fib() { local -n out=$1; local a=0 b=1 i; out=(); for ((i = 0; i < $2; i++)); do out+=("$a"); ((b = a + b, a = b - a)); done; }
status() { return "$1"; }
shadow() { local counter=99; echo "inner counter=$counter"; }
bump; bump 5; bump 10
echo "counter=$counter"
shadow
echo "outer counter=$counter"
echo "fact 10 = $(fact 10)"
fib seq 12
echo "fib: ${seq[*]}"
for s in 0 1 7 255; do status "$s"; echo "status $s -> $?"; done
declare -f bump
type -t fact
unset -f fact
type -t fact || echo "fact gone"
