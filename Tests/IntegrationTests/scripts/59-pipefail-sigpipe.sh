# SIGPIPE in pipelines: writers die quietly when the reader exits early.
yes | head -n 3
yes hello | head -n 100000 | wc -l
seq 1 1000000 | head -n 1
set -o pipefail
yes | head -n 1 > /dev/null; echo "pipefail status=$?"
seq 1 10 | head -n 1 > /dev/null; echo "small producer status=$?"
false | true; echo "false|true status=$?"
set +o pipefail
yes | head -n 1 > /dev/null; echo "no pipefail status=$?"
head -c 1000000 /dev/zero | tr '\0' a | wc -c
cat /etc/passwd | head -n 1
