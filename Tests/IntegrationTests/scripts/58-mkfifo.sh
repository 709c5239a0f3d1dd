# Named pipes between a background writer and a foreground reader.
mkfifo pipe1
ls -l pipe1 | awk '{print $1, $NF}'
test -p pipe1 && echo "is a fifo"
( echo "through the fifo"; echo "second line" ) > pipe1 &
while read -r line; do echo "read: $line"; done < pipe1
wait
seq 1 5000 > pipe1 &
wc -l < pipe1
wait
mkfifo req resp
( read -r q < req; echo "answer to $q" > resp ) &
echo question > req
cat resp
wait
stat -c '%F' pipe1
