# Explicit file descriptors: exec, duplication, close.
exec 3> fd3.txt
echo "via fd 3" >&3
echo "again" >&3
exec 3>&-
cat fd3.txt
exec 4< fd3.txt
read -r l1 <&4
read -r l2 <&4
exec 4<&-
echo "l1=$l1 l2=$l2"
echo "closed fd" >&4 2>/dev/null || echo "write to closed fd failed"
exec 5>&1
echo "through 5" >&5
exec 5>&-
exec 6<> rw.txt
echo "read-write" >&6
exec 6>&-
cat rw.txt
