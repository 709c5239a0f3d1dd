# Environment: exported vs shell variables, env, env -i, unset.
export FOO=bar
BAZ=local-only
export QUX="with space"
env | grep -E '^(FOO|BAZ|QUX)=' | sort
sh -c 'echo "child sees FOO=$FOO BAZ=$BAZ"'
env -i A=1 B=2 /usr/bin/env | sort
env FOO=override sh -c 'echo "FOO=$FOO"'
unset FOO
env | grep -c '^FOO=' 
X=temp sh -c 'echo "X=$X"'
echo "X after: ${X-unset}"
echo "PATH=$PATH"
echo "HOME=$HOME"
echo "PWD=$PWD"
env -u QUX sh -c 'echo "QUX=${QUX-unset}"'
