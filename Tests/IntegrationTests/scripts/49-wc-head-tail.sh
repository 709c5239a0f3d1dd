# wc, head and tail on generated data.
seq 1 1000 > nums.txt
wc -l nums.txt
wc -w < nums.txt
wc -c < nums.txt
printf 'one two\nthree\n' | wc
head -n 3 nums.txt
head -c 10 nums.txt | od -c | head -n 1
tail -n 2 nums.txt
tail -n +998 nums.txt
tail -c 8 nums.txt
head -n -995 nums.txt | tail -n 1
seq 1 5 | tail -r 2>/dev/null || seq 1 5 | sed -n '1!G;h;$p'
printf 'a\nb\nc' | wc -l
