# Command substitution: $(), backticks, nesting, newline stripping.
a=$(echo hello)
b=`echo world`
echo "$a $b"
c=$(echo $(echo nested $(echo twice)))
echo "$c"
d=$(printf 'x\n\n\n')
echo "[$d]"
e=$(printf 'line1\nline2')
echo "$e" | wc -l
n=$(seq 1 100 | wc -l)
echo "n=$n"
f=$(cat <<EOT
from heredoc
EOT
)
echo "$f"
g=$(false); echo "status=$?"
h=$(exit 5); echo "status=$?"
echo "len=${#a}"
