# umask governs the mode of new files and directories.
umask
umask 022
touch u022 && mkdir d022
umask 077
touch u077 && mkdir d077
umask 0
touch u000 && mkdir d000
umask 027
echo x > u027 && mkdir d027
stat -c '%a %n' u022 d022 u077 d077 u000 d000 u027 d027
umask -S
( umask 011; umask )
umask
