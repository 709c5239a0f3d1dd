# coreutils date -u on fixed epochs, sha256sum/md5sum/cksum, base64, od, numfmt, expr
date -u -d @86400 +%F
date -u -d @0 '+%Y-%m-%d %H:%M:%S %Z %j %u'
date -u -d '@1700000000' --iso-8601=seconds
date -u -d '2024-02-28 + 2 days' +%F
TZ=UTC date -d @1234567890 +%s
printf 'abc' > abc.txt
printf '' > empty.txt
seq 1000 > seq.txt
sha256sum abc.txt empty.txt seq.txt
md5sum abc.txt seq.txt
sha1sum abc.txt
cksum abc.txt seq.txt
sha256sum abc.txt seq.txt > SUMS
sha256sum -c SUMS
printf 'x' >> abc.txt
sha256sum -c SUMS 2>&1; echo "check status $?"
base64 seq.txt | head -2
printf 'hi\n' | base64 | base64 -d
printf 'AB\001\n' | od -An -tx1
numfmt --to=iec 1048576 123456789
expr 6 \* 7; expr length hello; expr substr abcdef 2 3
factor 360 97
