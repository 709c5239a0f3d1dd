# bash indexed and associative arrays: slicing, keys, deletion, counting words
declare -a fruits=(apple banana "cherry pie" date)
echo "count=${#fruits[@]} second=${fruits[1]} third=${fruits[2]}"
echo "slice: ${fruits[@]:1:2}"
fruits+=(elderberry)
unset 'fruits[0]'
echo "indices: ${!fruits[*]}"
for f in "${fruits[@]}"; do printf '<%s>' "$f"; done; echo
echo "upper: ${fruits[@]^^}"
echo "replace: ${fruits[@]/a/A}"
declare -A colour=([sky]=blue [grass]=green [sun]=yellow)
colour[rose]=red
unset 'colour[sun]'
for k in $(printf '%s\n' "${!colour[@]}" | sort); do echo "$k=${colour[$k]}"; done
echo "has sky: ${colour[sky]+yes} has sun: ${colour[sun]-no}"
declare -A freq=()
text="the quick brown fox jumps over the lazy dog the end"
for w in $text; do freq[$w]=$(( ${freq[$w]:-0} + 1 )); done
for k in "${!freq[@]}"; do echo "${freq[$k]} $k"; done | sort -k1,1nr -k2
mapfile -t lines < <(printf 'l%d\n' 3 1 2)
echo "mapfile: ${#lines[@]} ${lines[*]}"
