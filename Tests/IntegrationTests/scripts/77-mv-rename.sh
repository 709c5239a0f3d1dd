# mv/rename semantics: overwrite, into directories, directory renames.
echo one > f1
echo two > f2
mv f1 f2
cat f2
test -e f1 || echo "f1 gone"
mkdir dir
mv f2 dir/
ls dir
mkdir dir2
mv dir dir2
find dir2 | sort
mv dir2/dir dir3
find dir3 | sort
mv dir3/f2 dir3/f2 2>/dev/null; echo "self move status=$?"
echo x > a; mkdir b
mv -f a b/a && cat b/a
mv b/a b/.hidden && ls -A b
