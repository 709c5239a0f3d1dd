# basename, dirname, realpath, readlink -f.
basename /a/b/c.txt
basename /a/b/c.txt .txt
basename /
dirname /a/b/c.txt
dirname c.txt
dirname /
mkdir -p r/s && ln -s r/s link
realpath link
realpath r/s/../s
readlink -f link/../s
realpath .
cd r && realpath ../link
