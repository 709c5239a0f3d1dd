# find with -name, -type, -exec and -maxdepth.
mkdir -p tree/a/b/c tree/d
touch tree/one.txt tree/a/two.txt tree/a/b/three.log tree/a/b/c/four.txt tree/d/five.sh
ln -s one.txt tree/link.txt
find tree -name '*.txt' | sort
find tree -type d | sort
find tree -type f | sort
find tree -type l
find tree -maxdepth 1 | sort
find tree -name '*.txt' -type f -exec echo found {} \; | sort
find tree -type f -exec sh -c 'echo "$# files"' sh {} +
find tree -name 'nomatch*'; echo "status=$?"
find tree -type f -name '*.log' -exec rm {} \;
find tree | sort | wc -l
