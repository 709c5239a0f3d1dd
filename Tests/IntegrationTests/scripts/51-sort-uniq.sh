# sort options and uniq counting.
printf 'pear\napple\nfig\napple\nbanana\nfig\napple\n' > fruit.txt
sort fruit.txt
sort -u fruit.txt
sort -r fruit.txt | head -n 2
sort fruit.txt | uniq -c
sort fruit.txt | uniq -d
sort fruit.txt | uniq -u
sort fruit.txt | uniq -c | sort -rn | head -n 1
printf '3 c\n1 a\n2 b\n10 j\n' | sort -n
printf '3 c\n1 a\n2 b\n10 j\n' | sort -k2 -r
printf 'b:2\na:10\nc:1\n' | sort -t: -k2 -n
printf 'B\na\nC\nb\n' | sort -f
printf '1\n1\n2\n' | sort -c && echo "sorted"
printf '2\n1\n' | sort -c 2>/dev/null || echo "unsorted"
