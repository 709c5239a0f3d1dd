# umask is inherited by children; files created by cp/mkdir/touch honour it.
umask 027
sh -c umask
touch t && mkdir m && echo x > e
cp e c
mkdir -p p/q
stat -c '%a %n' t m e c p p/q
umask 0
cp e inst
stat -c "%a" inst
mkdir -m 700 explicit
stat -c '%a %n' explicit
