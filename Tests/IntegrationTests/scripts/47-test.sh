# test / [ ]: strings, numbers, files, combinations.
t() { if "$@"; then echo "true: $*"; else echo "false: $*"; fi; }
t [ abc = abc ]
t [ abc != abd ]
t [ -z "" ]
t [ -n "x" ]
t [ 3 -lt 10 ]
t [ 10 -ge 10 ]
t [ 5 -eq 6 ]
t test "a" \< "b"
echo data > file; mkdir dir; ln -s file link; : > empty
chmod 755 file
t [ -f file ]
t [ -d dir ]
t [ -e missing ]
t [ -s file ]
t [ -s empty ]
t [ -x file ]
t [ -L link ]
t [ -h file ]
t [ -r file -a -w file ]
t [ -f dir -o -d dir ]
t [ ! -e missing ]
t [ file -nt missing ]
[ 1 -eq ] 2>/dev/null; echo "bad expr status=$?"
