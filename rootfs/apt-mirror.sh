#!/usr/bin/env bash
# Prints the Debian mirror this machine's apt already uses for SUITE
# (default bookworm): the first `URIs:` of a deb822 source in
# /etc/apt/sources.list.d/*.sources whose Suites name SUITE, else the URI of
# a `deb` line for SUITE in /etc/apt/sources.list(.d/*.list). The project
# names no mirror itself; $MOAT_DEBIAN_MIRROR overrides. Exits 1 if none.
set -euo pipefail
suite="${1:-bookworm}"
if [ -n "${MOAT_DEBIAN_MIRROR:-}" ]; then echo "$MOAT_DEBIAN_MIRROR"; exit 0; fi
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822 stanzas are separated by blank lines.
    uri=$(awk -v suite="$suite" '
        function flush() { if (deb && hit && uri != "") { print uri; found = 1; exit } deb = 0; hit = 0; uri = "" }
        /^[[:space:]]*$/ { flush(); next }
        /^[[:space:]]*#/ { next }
        tolower($1) == "types:" { for (i = 2; i <= NF; i++) if ($i == "deb") deb = 1 }
        tolower($1) == "uris:" { uri = $2 }
        tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == suite) hit = 1 }
        END { if (!found) flush() }' "$f")
    if [ -n "$uri" ]; then echo "$uri"; exit 0; fi
done
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk -v suite="$suite" '
        $1 == "deb" { i = 2; if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                      if ($(i + 1) == suite) { print $i; exit } }' "$f")
    if [ -n "$uri" ]; then echo "$uri"; exit 0; fi
done
echo "rootfs/apt-mirror.sh: no apt source for $suite in /etc/apt (set MOAT_DEBIAN_MIRROR)" >&2
exit 1
