# tar czf / tzf / xzf round trip, gzip/gunzip, zcat; archives are removed afterwards
mkdir -p src/dir/nested
for i in 1 2 3; do seq "$i" 1000 > "src/dir/file$i"; done
printf 'top\n' > src/top.txt
ln -s top.txt src/link
chmod 640 src/dir/file2
tar czf arch.tgz src
tar tzf arch.tgz | sort
tar tvzf arch.tgz | awk '{ print $1, $NF }' | sort -k2
mkdir out
tar xzf arch.tgz -C out
diff -r src out/src && echo "extracted tree identical"
stat -c '%a %n' out/src/dir/file2
readlink out/src/link
tar cf - -C src dir | tar xf - -C out --strip-components=1
ls out | sort
seq 100000 > big.txt
gzip -9 -k big.txt
gzip -t big.txt.gz && echo "gzip ok"
zcat big.txt.gz | tail -1
gunzip -c big.txt.gz | cmp - big.txt && echo "gunzip matches"
gzip -l big.txt.gz | awk 'NR == 2 { print $2, $4 }'
rm -f arch.tgz big.txt.gz
