# grep: recursive, counts, inversion, case, regex flavours, exit codes.
mkdir -p g/sub
printf 'foo\nbar\nFoo bar\nbaz\n' > g/a.txt
printf 'nothing here\nfoo again\n' > g/sub/b.txt
printf 'binary\n' > g/sub/c.dat
grep -r foo g | sort
grep -ri foo g | sort
grep -rl foo g | sort
grep -c bar g/a.txt
grep -n ba g/a.txt
grep -v foo g/a.txt
grep -E '^(foo|baz)$' g/a.txt
grep -w bar g/a.txt
grep -o 'ba.' g/a.txt
grep -q foo g/a.txt && echo "quiet match"
grep zzz g/a.txt; echo "no match status=$?"
grep foo /nonexistent 2>/dev/null; echo "missing file status=$?"
grep -rh again g
