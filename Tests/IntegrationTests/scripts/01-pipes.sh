# Pipelines: multi-stage, exit status of the last stage, negation.
echo "one two three" | tr ' ' '\n' | sort
printf 'b\na\nc\n' | sort | head -n 2 | tail -n 1
echo hello | cat | cat | cat
true | false; echo "status=$?"
false | true; echo "status=$?"
! false; echo "negated=$?"
! true; echo "negated=$?"
seq 1 10 | grep 5 | wc -l
echo abc | { read x; echo "group read: $x"; }
echo "pipe to subshell" | ( cat; echo "done" )
