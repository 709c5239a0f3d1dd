# printf formats and escapes.
printf '%s\n' hello
printf '%s-%s\n' a b c d
printf '%d %i %5d|%-5d|%05d\n' 42 -7 3 3 3
printf '%x %X %o %#x %#o\n' 255 255 8 255 8
printf '%c%c%c\n' A B C
printf '%%literal\n'
printf 'tab\there\nnew\\line\n'
printf '%b\n' 'esc\tin\targ'
printf '%.3s|%10s|%-10s|\n' abcdef right left
printf '%5.2f %e %g\n' 3.14159 12345.678 0.0001
printf '\101\102\n'
printf '%s\n' "with spaces" 'single'
printf '%d\n' 0x1f 010
