# cut and tr.
cut -d: -f1,3 /etc/passwd
cut -d: -f1 -s /etc/group
echo "abcdefghij" | cut -c 2-4
echo "abcdefghij" | cut -c 1,3,5-
printf 'a\tb\tc\n' | cut -f 2
echo "Hello World" | tr a-z A-Z
echo "Hello World" | tr -d lo
echo "aaabbbccc" | tr -s abc
echo "abc123def" | tr -cd 0-9; echo
echo "a,b,c" | tr , '\n'
printf 'x\0y\0' | tr '\0' '\n'
echo hello | tr 'a-y' 'b-z'
