# coreutils cp -a, mv, rm -rf, ln -s/-f, readlink, realpath, find with predicates
mkdir -p a/b/c a/x
printf '1\n' > a/one; printf '22\n' > a/b/two; printf '333\n' > a/b/c/three
chmod 700 a/b/c; chmod 444 a/one
ln -s ../one a/b/up
ln a/b/two a/hard
cp -a a copy
find copy | sort
find copy -type f -size -3c | sort
find copy -type l -printf '%p -> %l\n'
find copy -perm 444 -o -perm 700 | sort
find copy -name 't*' ! -name '*o' | sort
find copy -mindepth 2 -maxdepth 2 -type d | sort
find copy -type f -exec wc -c {} + | sort -k2
stat -c '%a %h %n' copy/one copy/hard; stat -c '%a %n' copy/b/c
mv copy/b/c copy/moved
mv copy/one copy/x/
ls copy copy/x | cat
readlink copy/b/up; readlink -f copy/b/up || echo "dangling: $?"
realpath --relative-to=copy copy/moved/three
ln -sf three copy/moved/alias; ln -sfn ../x copy/moved/xdir; ls copy/moved/xdir/
cp -r copy/moved copy/moved2; cp -p a/one plain; stat -c '%a' plain
rm -rf copy/moved copy/b
rm plain; rm -f nonexistent; rm nonexistent 2>&1; echo "rm status $?"
find . -path ./test.sh -prune -o -print | sort
