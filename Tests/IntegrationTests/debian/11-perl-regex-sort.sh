# perl one-liners: regex captures/substitution, sort, sprintf, hashes, split/join
printf '%s\n' 'alice=30' 'bob=7' 'carol=125' 'dave=7' > kv.txt
perl -ne 'print "$2:$1\n" if /^(\w+)=(\d+)$/' kv.txt
perl -lne '($k, $v) = split /=/; $h{$k} = $v; END { print join ",", map { "$_=$h{$_}" } sort { $h{$a} <=> $h{$b} or $a cmp $b } keys %h }' kv.txt
perl -pe 's/(\d+)/sprintf("%05.1f", $1 \/ 4)/e' kv.txt
perl -e 'printf("%-8s|%8.3f|%x|%o|%b|%e\n", "left", 3.14159, 255, 8, 5, 1234.5)'
perl -e '@a = sort { $a <=> $b } (10, 2, 33, 4); print "@a\n"; print scalar(reverse("stressed")), "\n"'
perl -le 'print join " ", map { $_ ** 2 } grep { $_ % 2 } 1..9'
perl -le '$s = "The year 1999 and 2024, not 12345"; @y = $s =~ /\b(\d{4})\b/g; print "@y"'
perl -le '$_ = "aaa bbb ccc"; $n = tr/a-b//; s/\s+/_/g; print "$_ $n"'
perl -le 'print lc("MiXeD"), " ", ucfirst("word"), " ", length("unicode"), " ", index("hello", "l")'
perl -le '%h = (one => 1, two => 2, three => 3); while (my ($k, $v) = each %h) { $t += $v } print $t; print exists $h{two} ? "yes" : "no"'
perl -le 'print for sort { length($a) <=> length($b) || $a cmp $b } qw(pear fig apple kiwi banana)'
echo 'x,"quoted, comma",y' | perl -lne 'print join "|", /("[^"]*"|[^,]+)/g'
perl -e 'exit 3'; echo "perl exit $?"
perl -e 'die "fatal\n"' 2>&1; echo "die status $?"
