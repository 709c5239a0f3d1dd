# awk: fields, separators, aggregates, arrays, printf.
printf 'alice 30 paris\nbob 25 rome\ncarol 35 paris\ndave 40 oslo\n' > people.txt
awk '{print $1}' people.txt
awk '$2 > 28 {print $1, $2}' people.txt
awk '{s += $2} END {print "total", s, "avg", s / NR}' people.txt
awk '{c[$3]++} END {for (k in c) print k, c[k]}' people.txt | sort
awk -F: '$3 == 0 {print $1, $6}' /etc/passwd
awk 'BEGIN {printf "%5.2f|%-6s|%03d\n", 3.14159, "ab", 7}'
awk 'BEGIN {x = "hello world"; print length(x), toupper(substr(x, 1, 5)), index(x, "wor")}'
awk 'BEGIN {n = split("a,b,c,d", arr, ","); print n, arr[4]}'
echo "one two three" | awk '{for (i = NF; i > 0; i--) printf "%s%s", $i, (i > 1 ? " " : "\n")}'
seq 1 10 | awk 'NR % 3 == 0'
awk 'BEGIN {print int(7 / 2), 7 % 3, 2 * 2 * 2}'
echo "a-b-c" | awk '{gsub(/-/, "+"); print}'
