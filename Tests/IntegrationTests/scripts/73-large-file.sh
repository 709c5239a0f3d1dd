# A few megabytes written and read back through pipes and files.
seq 1 400000 > big.txt
wc -c < big.txt
md5sum big.txt
cat big.txt big.txt | wc -l
tail -n 1 big.txt
sort -rn big.txt | head -n 1
cp big.txt copy.txt && cmp big.txt copy.txt && echo "copy identical"
awk 'NR % 100000 == 0' big.txt
grep -c 9999 big.txt
rm big.txt
