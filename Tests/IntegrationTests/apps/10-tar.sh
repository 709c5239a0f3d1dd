# tar with gzip and xz over 3000 files: deterministic archives (sorted,
# fixed mtime and owner), listing, extraction and comparison.
set -eu
mkdir -p /tmp/t/src && cd /tmp/t
# 3000 files of varied sizes, written by one awk process.
awk 'BEGIN { for (d = 1; d <= 30; d++) { system("mkdir -p src/dir" d)
    for (f = 1; f <= 100; f++) { p = "src/dir" d "/f" f ".txt"; printf "dir %d file %d\n", d, f > p
        for (i = f; i <= f + d * 3; i++) print i * i > p; close(p) } } }'
ln -s dir1/f1.txt src/link
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf src.tar src
sha256sum src.tar | cut -c1-16
gzip -n -k -6 src.tar && sha256sum src.tar.gz | cut -c1-16
xz -k -T1 -6 src.tar && sha256sum src.tar.xz | cut -c1-16
tar -tzf src.tar.gz | wc -l
tar -tJf src.tar.xz | grep -c 'f100.txt'
mkdir x1 x2
tar -xzf src.tar.gz -C x1
tar -xJf src.tar.xz -C x2
diff -r src x1/src && diff -r src x2/src && echo "extracted trees match"
find x2 -type f | wc -l
tar -czf - -C src . | tar -tzf - | wc -l
