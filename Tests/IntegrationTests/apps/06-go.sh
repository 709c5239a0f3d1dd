# The static Go program (apps/go/main.go): goroutines, net/http over
# loopback, os/exec with pipes larger than a pipe buffer.
set -eu
/usr/local/bin/gotest
