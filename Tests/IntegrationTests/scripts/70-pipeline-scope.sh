# Variables set inside a pipeline stage do not leak to the parent shell.
count=0
seq 1 5 | while read -r n; do count=$((count + n)); done
echo "after pipeline: $count"
count=0
while read -r n; do count=$((count + n)); done <<EOT
$(seq 1 5)
EOT
echo "after here-doc loop: $count"
total=$(seq 1 5 | { s=0; while read -r n; do s=$((s + n)); done; echo $s; })
echo "captured: $total"
echo value | read -r got; echo "read in pipeline: [${got-}]"
{ read -r got2; } <<EOT
direct
EOT
echo "read from here-doc: $got2"
