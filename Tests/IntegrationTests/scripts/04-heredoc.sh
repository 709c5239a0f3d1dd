# Input redirection and here-documents.
printf 'alpha\nbeta\ngamma\n' > in.txt
wc -l < in.txt
while read -r w; do echo "word: $w"; done < in.txt
name=world
cat <<EOT
hello $name
sum: $((2 + 3))
cmd: $(echo subst)
EOT
cat <<'EOT'
literal $name $(echo no)
EOT
cat <<-EOT
	tab stripped
		two tabs
	EOT
cat <<EOT | tr a-z A-Z
piped heredoc
EOT
read -r first < in.txt; echo "first=$first"
