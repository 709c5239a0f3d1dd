# Subshells isolate variables, cwd and exit status.
x=outer
( x=inner; echo "in subshell: $x" )
echo "after: $x"
mkdir -p sub/dir
( cd sub/dir && pwd )
pwd
( exit 3 ); echo "subshell exit=$?"
( ( ( echo nested ) ) )
y=$( ( echo deep ) )
echo "y=$y"
( set -e; false; echo "not reached" ); echo "set -e subshell=$?"
(trap 'echo sub-exit-trap' EXIT; echo in-sub)
echo end
