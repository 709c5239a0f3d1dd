# Byte-level dumps.
printf 'ABC\001\377\n' > bytes.bin
od -An -tx1 bytes.bin
od -c bytes.bin
od -An -tu2 bytes.bin
hexdump -C bytes.bin
xxd bytes.bin
printf 'hello' | xxd -p
printf '68656c6c6f0a' | xxd -r -p
seq 1 20 | od -An -c | head -n 2
