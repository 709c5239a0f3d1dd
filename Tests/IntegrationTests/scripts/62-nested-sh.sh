# Nested shells: -c with arguments, scripts from stdin and from files.
sh -c 'echo "0=$0 1=$1 2=$2 #=$#"' zero one two
echo 'echo "from stdin: $1"' | sh -s arg
printf 'echo "script file args: $*"\nexit 6\n' > child.sh
sh child.sh p q; echo "child status=$?"
sh -c 'sh -c "sh -c \"echo three levels\""'
sh -c 'echo $(( $1 + $2 ))' sh 20 22
sh -c 'set -e; false; echo no'; echo "set -e child=$?"
sh -n child.sh && echo "syntax ok"
echo 'if then' > bad.sh
sh -n bad.sh 2>/dev/null || echo "syntax error detected"
