# Functions: arguments, local, return values, recursion.
greet() { echo "hello $1 ($# args)"; }
greet alice
greet bob extra args
fact() {
  if [ "$1" -le 1 ]; then echo 1; return; fi
  echo $(( $1 * $(fact $(( $1 - 1 ))) ))
}
echo "10! = $(fact 10)"
v=global
scope() { local v=local; echo "inside $v"; }
scope; echo "outside $v"
rc() { return $1; }
rc 0; echo "rc0=$?"
rc 9; echo "rc9=$?"
rc 255; echo "rc255=$?"
count() { c=0; for x in "$@"; do c=$((c+1)); done; echo $c; }
count a "b c" d
fib() { a=0 b=1 i=0; while [ $i -lt $1 ]; do t=$((a+b)); a=$b; b=$t; i=$((i+1)); done; echo $a; }
fib 50
