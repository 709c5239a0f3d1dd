# touch and a recursive listing filtered to stable columns.
mkdir -p top/a/b top/c
touch top/f1 top/a/f2 top/a/b/f3 top/c/.hidden
touch top/f1
echo data > top/a/f2
chmod 700 top/c
touch -c top/not-created
test -e top/not-created || echo "touch -c did not create"
ls -laR top | awk '/^total/ {next} NF == 0 {print "--"; next} NF == 1 {print; next} {print $1, $NF}'
ls -A top
ls -1 top/a
ls -d top/*/
