# coreutils sort -S 1M (large input), uniq, du --apparent-size, wc, head/tail, cut, tr
seq 1 20000 | awk '{ print ($1 * 7919) % 10007, $1 }' > nums.txt
sort -S 1M -n -k1,1 -k2,2n nums.txt > sorted.txt
head -3 sorted.txt; tail -2 sorted.txt
sort -S 1M -u -n -k1,1 nums.txt | wc -l
cut -d' ' -f1 nums.txt | sort -S 1M -n | uniq -c | sort -k1,1nr -k2,2n | head -3
printf '%s\n' pear Apple banana apple Cherry | sort
printf '%s\n' pear Apple banana apple Cherry | sort -f
printf '%s\n' 10 9 1e3 0x10 -5 | sort -g
printf 'b 2\na 10\nc 1\n' | sort -k2n
mkdir -p du/a du/b
head -c 10000 /dev/zero > du/a/zeros
printf '%s' abc > du/b/three
du -s --apparent-size -B1 du/a/zeros du/b/three
du -b du/a/zeros du/b/three
wc -c nums.txt sorted.txt | sort -k2
tr 'a-z' 'A-Z' <<< "mixed Case 123" | tr -d 0-9 | tr -s ' '
sha256sum sorted.txt | cut -c1-16
