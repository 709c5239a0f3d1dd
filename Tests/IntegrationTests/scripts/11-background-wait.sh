# Background jobs writing to separate files, then wait for all of them.
for i in 1 2 3 4; do
  ( seq 1 $((i * 1000)) | wc -l > bg-$i.txt ) &
done
wait
cat bg-1.txt bg-2.txt bg-3.txt bg-4.txt
# A job gated on a file: it cannot finish before we allow it to.
( while [ ! -e go ]; do sleep 0.05; done; echo late > late.txt ) &
echo "before go: $(cat late.txt 2>/dev/null || echo missing)"
touch go
wait
echo "after wait: $(cat late.txt)"
{ echo a; echo b; } > grp.txt &
wait
cat grp.txt
