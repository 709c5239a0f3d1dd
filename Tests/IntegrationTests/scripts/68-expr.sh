# expr: arithmetic, comparison, string operations, exit codes.
expr 3 + 4
expr 10 - 20
expr 6 \* 7
expr 17 / 5
expr 17 % 5
expr 3 \< 5
expr abc = abc
expr length "hello world"
expr substr "hello world" 7 5
expr index "hello" l
expr "abc123" : '[a-z]*'
expr "abc123" : '[a-z]*\([0-9]*\)'
expr 0 + 0; echo "zero status=$?"
expr 1 / 0 2>/dev/null; echo "div0 status=$?"
