# Checksums of generated data; checksum files verified with -c.
seq 1 10000 > data.txt
md5sum data.txt
sha1sum data.txt
sha256sum data.txt
sha512sum data.txt | cut -c 1-32
seq 1 10000 | md5sum
printf '' | sha256sum
yes abc | head -n 50000 | sha256sum
md5sum data.txt > data.md5
md5sum -c data.md5
echo tampered >> data.txt
md5sum -c data.md5 2>&1; echo "check status=$?"
cksum data.md5 2>/dev/null || crc32 data.md5 2>/dev/null || echo "no crc tool"
