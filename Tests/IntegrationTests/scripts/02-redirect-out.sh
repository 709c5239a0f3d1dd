# Output redirection: truncate, append, noclobber, redirect of groups.
echo first > out.txt
echo second >> out.txt
echo third >> out.txt
cat out.txt
echo replaced > out.txt
cat out.txt
{ echo a; echo b; } > group.txt
cat group.txt
for i in 1 2 3; do echo "line $i"; done > loop.txt
cat loop.txt
set -C
echo clobber > out.txt 2>/dev/null || echo "noclobber refused"
echo forced >| out.txt
set +C
cat out.txt
: > empty.txt
wc -c < empty.txt
