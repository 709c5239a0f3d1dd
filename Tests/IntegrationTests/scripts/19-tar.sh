# tar c | tar x round trip preserves contents, modes and links.
mkdir -p src/sub dst
seq 1 500 > src/numbers.txt
echo hello > src/sub/hello.txt
chmod 750 src/sub
chmod 600 src/numbers.txt
ln -s sub/hello.txt src/link
tar cf - src | (cd dst && tar xf -)
(cd src && find . | sort)
(cd dst/src && find . | sort)
md5sum src/numbers.txt dst/src/numbers.txt | awk '{print $1}'
ls -l dst/src | awk 'NR > 1 {print $1, $NF}'
readlink dst/src/link
tar cf - src | tar tf - | sort
tar czf - src | tar tzf - | wc -l
