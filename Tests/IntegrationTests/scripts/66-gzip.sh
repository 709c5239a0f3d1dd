# Compression round trips; only hashes of the decompressed data are printed.
seq 1 20000 > plain.txt
md5sum < plain.txt
gzip -c plain.txt | gunzip -c | md5sum
bzip2 -c plain.txt | bunzip2 -c | md5sum
gzip -c plain.txt > plain.txt.gz
gzip -t plain.txt.gz && echo "gzip test ok"
zcat plain.txt.gz | tail -n 1
gunzip -c plain.txt.gz > back.txt && cmp plain.txt back.txt && echo "round trip ok"
rm plain.txt.gz
test "$(gzip -c plain.txt | wc -c)" -lt "$(wc -c < plain.txt)" && echo "compressed is smaller"
