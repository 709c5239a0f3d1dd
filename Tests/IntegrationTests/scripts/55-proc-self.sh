# /proc/self basics that hold both natively (chroot + procfs) and in a sandbox.
test -d /proc/self && echo "proc self ok"
test -d /proc/$$ && echo "proc pid dir ok"
readlink /proc/self/exe
cat /proc/self/comm
tr '\0' ' ' < /proc/self/cmdline; echo
cat /proc/self/cmdline | tr '\0' ' '; echo
readlink /proc/self/cwd
cd /tmp && readlink /proc/self/cwd && cd /work
grep -c '^Name:' /proc/self/status
awk '/^Name:/ {print $2}' /proc/self/status
awk '{print $2}' /proc/self/stat
test "$(awk '{print $1}' /proc/self/stat)" -gt 0 && echo "pid positive"
test -r /proc/self/maps && echo "maps readable"
grep -q busybox /proc/self/maps && echo "maps mention busybox"
test -e /proc/self/fd/0 && echo "fd 0 present"
