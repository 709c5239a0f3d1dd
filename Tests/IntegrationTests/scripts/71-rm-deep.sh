# Deep and wide directory trees: creation, counting, removal.
d=deep
for i in $(seq 1 40); do d=$d/l$i; done
mkdir -p "$d"
echo bottom > "$d/file"
find deep -type d | wc -l
cat "$d/file"
mkdir wide
for i in $(seq 1 300); do : > wide/f$i; done
ls wide | wc -l
ls wide | sort -t f -k2 -n | tail -n 1
rm -rf deep
test -e deep || echo "deep removed"
rm wide/f1*
ls wide | wc -l
rmdir wide 2>/dev/null || echo "rmdir refused non-empty"
rm -r wide && echo "wide removed"
