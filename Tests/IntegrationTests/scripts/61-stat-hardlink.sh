# Hard links share an inode: link counts and shared content.
echo original > a
ln a b
stat -c '%h %s %F' a b
test a -ef b && echo "same file"
echo appended >> b
cat a
ln b c
stat -c '%h' a
rm a
stat -c '%h' b
cat c
ln -s c sym
stat -c '%F' sym
stat -L -c '%F %s' sym
stat -c '%a %s %n' c
