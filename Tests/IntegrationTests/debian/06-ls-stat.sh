# coreutils ls -l (mode and name only), stat -c, chmod, mkdir -p, touch, truncate
mkdir -p tree/sub/deeper
printf 'hello\n' > tree/a.txt
printf '%s' 0123456789 > tree/ten
: > tree/empty
truncate -s 4096 tree/sparse
ln -s a.txt tree/link
mkfifo tree/pipe
chmod 600 tree/a.txt; chmod 755 tree/ten; chmod 4755 tree/empty; chmod 1777 tree/sub
ls -l tree | awk 'NR > 1 { print $1, $NF }'
ls -lA tree/sub | awk 'NR > 1 { print $1, $NF }'
ls -1 tree; ls -1r tree | head -2; ls -d tree/*/
for f in tree/a.txt tree/ten tree/empty tree/sparse tree/link tree/pipe; do
    stat -c '%n %s %F %a' "$f"
done
stat -L -c '%n %s %F' tree/link
stat -c '%n %F %a' tree/sub
stat -c '%A %U %G' tree/a.txt
test -p tree/pipe && test -L tree/link && test -k tree/sub && test -u tree/empty && echo "test flags ok"
rm tree/pipe
