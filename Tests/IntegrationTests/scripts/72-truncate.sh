# truncate, sparse files and growing/shrinking files.
seq 1 100 > t.txt
wc -c < t.txt
truncate -s 10 t.txt
cat t.txt; echo
truncate -s 20 t.txt
wc -c < t.txt
od -An -c t.txt | tail -n 1
truncate -s 0 t.txt
wc -c < t.txt
truncate -s 1M big.bin
wc -c < big.bin
md5sum big.bin
: > t.txt
echo again >> t.txt
cat t.txt
