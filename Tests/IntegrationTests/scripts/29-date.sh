# date with fixed inputs only.
date -u -d @0 +%Y
date -u -d @0 '+%Y-%m-%d %H:%M:%S'
date -u -d @86400 +%A
date -u -d @1234567890 '+%F %T %Z'
date -u -d @2147483648 '+%Y-%m-%d'
date -u -d '2001-02-03 04:05:06' +%s
TZ=UTC0 date -d @1000000000 +%c
now=$(date +%s)
[ "$now" -gt 1600000000 ] && echo "clock is plausible"
date -u -d @0 +%j-%U-%u
