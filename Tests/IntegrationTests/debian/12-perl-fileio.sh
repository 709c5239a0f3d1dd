# perl file I/O: open/print/close, append, read modes, seek/tell, opendir, rename, unlink, -e/-s tests
perl -e '
open(my $fh, ">", "out.txt") or die "open: $!";
printf $fh "line %d\n", $_ for 1..5;
close($fh);
open($fh, ">>", "out.txt") or die; print $fh "appended\n"; close($fh);
open($fh, "<", "out.txt") or die; my @l = <$fh>; close($fh);
print "lines: ", scalar(@l), " last: $l[-1]";
open($fh, "+<", "out.txt") or die; seek($fh, 5, 0); print $fh "X"; seek($fh, 0, 2); print "size via tell: ", tell($fh), "\n"; close($fh);
print "size -s: ", -s "out.txt", "\n";
mkdir("d") or die; for my $n (qw(c a b)) { open(my $o, ">", "d/$n") or die; print $o $n x 3; close $o }
opendir(my $dh, "d") or die; my @e = sort grep { !/^\./ } readdir($dh); closedir($dh);
print "dir: @e\n";
rename("d/a", "d/z") or die; unlink("d/b") or die;
print "exists a: ", (-e "d/a" ? 1 : 0), " z: ", (-e "d/z" ? 1 : 0), "\n";
open($fh, "<", "nonexistent") or print "open failed: $!\n";
{ local $/; open($fh, "<", "d/z") or die; my $all = <$fh>; print "slurp: $all\n" }
chmod(0640, "d/c"); printf "mode: %o\n", (stat("d/c"))[2] & 07777;
symlink("c", "d/lnk") or die; print "readlink: ", readlink("d/lnk"), "\n";
'
head -2 out.txt
perl -i.bak -pe 's/line/LINE/' out.txt && cat out.txt && rm out.txt.bak
perl -e 'open(my $p, "-|", "printf", "a\\nb\\n") or die; print "pipe: ", join("", <$p>); close $p; print "child status $?\n"'
perl -e 'open(my $p, "|-", "tr a-z A-Z") or die; print $p "to child\n"; close $p'
perl -e 'my $pid = fork(); if ($pid == 0) { exit 9 } waitpid($pid, 0); print "fork child exit ", $? >> 8, "\n"'
