# stderr redirections and their ordering.
echo "to stderr" >&2
echo "to stdout"
ls /nonexistent-path 2>err.txt; echo "ls status=$?"
cat err.txt
ls /nonexistent-path 2>&1 | sed 's/^/captured: /'
{ echo out; echo err >&2; } > both.txt 2>&1
sort both.txt
{ echo out2; echo err2 >&2; } 2>&1 > only-out.txt | sed 's/^/pipe: /'
cat only-out.txt
{ echo x; echo y >&2; } 2>/dev/null
exec 2>stderr-log.txt
echo "after exec redirect" >&2
exec 2>&1
cat stderr-log.txt
