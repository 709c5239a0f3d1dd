# Pathname expansion.
mkdir gl && cd gl
touch a1 a2 b1 bc .hidden 'sp ace'
echo *
echo a*
echo ?1
echo [ab]1
echo [!a]*
echo .*
echo nomatch*
echo "quoted *"
set -f; echo *; set +f
for f in *; do echo "file: $f"; done
ls -d */ 2>/dev/null || echo "no dirs"
mkdir sub; touch sub/x sub/y
echo sub/*
echo */*
