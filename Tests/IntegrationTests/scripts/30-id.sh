# Identity: numeric and named ids, and switching user with su.
id -u
id -g
id -un
id -gn
whoami
su -s /bin/sh user -c 'id -u; id -g; id -un; echo "HOME=$HOME"'
su -s /bin/sh nobody -c 'id -u; touch /work/nobody-file 2>/dev/null || echo "nobody cannot write /work"'
test -e nobody-file || echo "no file created"
su -s /bin/sh user -c 'echo "user shell: $0"'
grep '^user:' /etc/passwd | cut -d: -f3,4,6
