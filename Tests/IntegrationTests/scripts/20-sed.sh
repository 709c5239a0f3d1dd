# sed substitutions, addresses, deletion, in-place edits.
printf 'apple pie\nbanana split\ncherry tart\napple crumble\n' > f.txt
sed 's/apple/APPLE/' f.txt
sed -n '/apple/p' f.txt
sed '2d' f.txt
sed -n '2,3p' f.txt
sed 's/\([a-z]*\) \([a-z]*\)/\2 \1/' f.txt
sed 'y/abc/ABC/' f.txt
sed -e 's/a/A/g' -e '$a\
appended line' f.txt
sed -i 's/tart/pie/' f.txt
cat f.txt
echo "a.b.c" | sed 's/\./-/g'
seq 1 10 | sed -n '3p;6p;9p'
printf 'x\ny\n' | sed '1!G;h;$!d'
echo "hello world" | sed -E 's/(o+)/[\1]/g'
