# dd with /dev/zero and files; stderr statistics are filtered (they hold timings).
dd if=/dev/zero bs=1k count=64 2>/dev/null | wc -c
dd if=/dev/zero of=zeros.bin bs=4096 count=3 2>&1 | grep records
wc -c < zeros.bin
seq 1 1000 > src.txt
dd if=src.txt of=part.txt bs=1 skip=10 count=20 2>/dev/null
cat part.txt; echo
dd if=src.txt bs=100 count=2 2>/dev/null | md5sum
dd if=/dev/zero of=sparse.bin bs=1 count=1 seek=100000 2>/dev/null
wc -c < sparse.bin
md5sum sparse.bin zeros.bin
