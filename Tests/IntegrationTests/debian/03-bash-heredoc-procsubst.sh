# bash here-docs, here-strings, process substitution and command substitution
name=world
cat <<EOT
hello $name
sum $((2 + 3))
EOT
cat <<'EOT'
literal $name $((1+1))
EOT
cat <<-EOT
	tabs stripped for $name
	EOT
tr a-z A-Z <<< "here string $name"
diff <(printf '%s\n' a b c) <(printf '%s\n' a x c) && echo same || echo "diff status $?"
paste <(seq 1 3) <(seq 4 6) <(printf '%s\n' x y z)
while read -r n sq; do echo "$n squared is $sq"; done < <(for i in 1 2 3; do echo "$i $((i * i))"; done)
inner=$(echo "a $(echo "b $(echo c)")")
echo "nested: $inner"
lines=$(printf 'one\ntwo\n\n\n')
echo "trailing newlines stripped: [$lines]"
tee >(wc -l > count.txt) < <(seq 5) > copy.txt
wait $!
cat copy.txt
echo "count: $(cat count.txt)"
