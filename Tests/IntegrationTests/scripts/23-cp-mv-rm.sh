# cp -a, mv and rm -rf; the resulting tree is compared too.
mkdir -p orig/inner
echo content > orig/file
echo inner > orig/inner/deep
chmod 640 orig/file
ln -s file orig/symlink
cp -a orig copy
ls -l copy | awk 'NR > 1 {print $1, $NF}'
readlink copy/symlink
cp orig/file plain-copy
cat plain-copy
mv plain-copy renamed
ls renamed plain-copy 2>&1
mv copy moved
test -d copy || echo "copy is gone"
mv moved/inner/deep moved/deep2
find moved | sort
rm -rf orig
test -e orig || echo "orig removed"
rm -f nonexistent && echo "rm -f ok"
rm nonexistent 2>/dev/null || echo "rm failed as expected"
mkdir -p d1/d2/d3 && rm -r d1 && echo "rm -r ok"
