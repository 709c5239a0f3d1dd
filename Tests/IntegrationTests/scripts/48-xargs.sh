# xargs: batching, replacement, NUL-separated input.
seq 1 10 | xargs echo
seq 1 10 | xargs -n 3 echo
echo "a b c d e" | xargs -n 2 echo pair:
printf 'x\ny\nz\n' | xargs -I{} echo "item {} done"
mkdir -p xd
touch "xd/with space" xd/plain
find xd -type f -print0 | xargs -0 ls | sort
find xd -type f -print0 | xargs -0 -n 1 echo | wc -l
printf '' | xargs echo empty-input
seq 1 5 | xargs sh -c 'echo "$# args: $*"' sh
seq 1 3 | xargs -t echo 2>&1
echo 1 2 3 | xargs sh -c 'exit 2'; echo "xargs status=$?"
