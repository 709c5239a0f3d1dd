# The basic character devices.
cat /dev/null
wc -c < /dev/null
echo "discarded" > /dev/null
echo "status=$?"
head -c 16 /dev/zero | od -An -tx1
head -c 32 /dev/urandom | wc -c
head -c 32 /dev/random | wc -c
test -c /dev/null && echo "/dev/null is a char device"
test -c /dev/zero && echo "/dev/zero is a char device"
echo x > /dev/full 2>/dev/null || echo "write to /dev/full failed"
ls /nonexistent 2>/dev/null; echo "ls status=$?"
cat < /dev/null > empty.out; wc -c < empty.out
