# bash arithmetic (bases, bit ops, ternary, overflow) and read loops with IFS
echo $(( 7 / 2 )) $(( -7 / 2 )) $(( -7 % 3 )) $(( 2 ** 62 )) $(( 2 ** 63 ))
echo $(( 0x1f )) $(( 017 )) $(( 2#1011 )) $(( 36#zz )) $(( 1 << 40 ))
echo $(( 5 & 3 )) $(( 5 | 3 )) $(( 5 ^ 3 )) $(( ~5 )) $(( !0 )) $(( 3 > 2 ? 10 : 20 ))
x=5; (( x += 3, x *= 2 )); echo "x=$x"; (( x++ )); echo "x=$x"
let "y = x % 7"; echo "y=$y"
declare -i z=10; z+=5; z="z * 2"; echo "z=$z"
printf '%05d|%-6s|%x|%o|%e|%.3f\n' 42 ab 255 8 12345.678 3.14159
cat > data.csv <<'EOT'
alice:30:paris
bob:25:berlin
carol:35:tokyo
EOT
total=0
while IFS=: read -r who age city; do
    printf '%-6s %3d %s\n' "$who" "$age" "${city^}"
    total=$((total + age))
done < data.csv
echo "total age $total"
IFS=, read -r -a parts <<< "a,b,,d"
echo "parts=${#parts[@]} [${parts[2]}] ${parts[3]}"
read -r -d '' block <<'EOT' || true
line one
line two
EOT
echo "block has $(printf '%s' "$block" | wc -l) newline(s)"
i=0; until (( i >= 3 )); do echo "until $i"; (( i++ )) || true; done
