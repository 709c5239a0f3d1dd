# Parameter expansion forms and positional parameters.
path=/usr/local/lib/libfoo.so.1
echo "${path##*/} ${path#*/} ${path%/*} ${path%%.*}"
echo "${#path}"
unset u; e=
echo "[${u:-default}] [${e:-empty-default}] [${e-set-but-empty}]"
echo "[${u:=assigned}] u=$u"
echo "[${path:+alt}] [${u2:+alt}]"
s=hello-world-hello
echo "${s/hello/bye} ${s//hello/bye}"
echo "${s:6} ${s:0:5} ${s: -5}"
set -- a "b c" d
echo "$# $1 $2 $3"
for x in "$@"; do echo "at: $x"; done
for x in "$*"; do echo "star: $x"; done
shift; echo "after shift: $# $1"
set -- $(echo one two three); echo "$2"
(: ${missing?is required}) 2>&1 | sed 's/^[^:]*: line [0-9]*: //'
