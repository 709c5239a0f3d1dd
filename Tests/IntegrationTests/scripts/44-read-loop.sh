# read in loops: IFS splitting, -r, remaining fields, here-docs.
while IFS=: read -r name pw uid gid rest; do
  echo "$name uid=$uid gid=$gid"
done < /etc/passwd
printf 'a b c d\n' | { read x y z; echo "x=$x y=$y z=$z"; }
printf 'back\\slash\n' | { read -r v; echo "raw: $v"; }
printf 'back\\slash\n' | { read v; echo "cooked: $v"; }
n=0
while read -r line; do n=$((n + 1)); done <<EOT
one
two
three
EOT
echo "lines=$n"
printf 'no newline at end' | { read -r last; echo "status=$? last=$last"; }
printf '  padded  \n' | { IFS= read -r p; echo "[$p]"; }
seq 1 5 | while read -r i; do echo "item $i"; done
