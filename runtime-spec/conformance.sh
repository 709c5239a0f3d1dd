#!/usr/bin/env bash
# Runs the OCI runtime validation suite (opencontainers/runtime-tools, validation/*.t, TAP
# output) against one runtime, and writes per-test and per-check results.
#
#   runtime-spec/conformance.sh RUNTIME_TOOLS_CHECKOUT RUNTIME OUTDIR [TEST...]
#
#   RUNTIME_TOOLS_CHECKOUT  a git work tree of runtime-tools; its validation executables and
#                           runtimetest are built here (Go, vendored deps, no network) unless
#                           they are already newer than their sources.
#   RUNTIME                 the runtime executable (runc, or .build/release/moat), absolute or on PATH.
#   OUTDIR                  gets NAME.tap (the test's stdout), NAME.err (stderr), and summary.tsv:
#                           test, pass or fail, exit status, ok, not ok, skipped (one line per test, then
#                           "total"). A test that exits non-zero counts at least one not ok.
#   TEST...                 test names (validation/NAME/NAME.go); all of them by default.
#
# Run it as root (the suite creates real containers). Debian 12's Go is 1.19: runtime-tools
# needs Go >= 1.21 from commit c2dadba on, so with it check out 260e151 (2025-03-03, the last
# commit that builds with 1.19; its tests differ from later ones only by lint fixes).
# MOAT_CONFORMANCE_TIMEOUT bounds each test (seconds, default 300). Not part of CI: it needs
# runtime-tools and a release build.
set -u

if [ $# -lt 3 ]; then
  sed -n '2,20p' "$0" >&2
  exit 2
fi
rt=$(cd "$1" && pwd) || exit 2
runtime=$2
out=$3
shift 3
case $runtime in
  /*) ;;
  */*) runtime=$(cd "$(dirname "$runtime")" && pwd)/$(basename "$runtime") ;;
  *) runtime=$(command -v "$runtime") || { echo "no runtime $2" >&2; exit 2; } ;;
esac
mkdir -p "$out" && out=$(cd "$out" && pwd) || exit 2
timeout_s=${MOAT_CONFORMANCE_TIMEOUT:-300}

cd "$rt" || exit 2
export GOFLAGS=-mod=vendor GO111MODULE=on GOPROXY=off GOTOOLCHAIN=local CGO_ENABLED=0

build() { # OUTPUT SOURCE...
  local o=$1 newer=0; shift
  if [ -x "$o" ]; then
    for s in "$@"; do [ "$s" -nt "$o" ] && newer=1; done
    [ $newer = 0 ] && [ validation/util/test.go -ot "$o" ] && return 0
  fi
  go build "$@" || { echo "conformance: cannot build $o (Go $(go env GOVERSION); see the note on Go versions at the top of $0)" >&2; exit 1; }
}
build runtimetest -tags "netgo osusergo" -ldflags "-extldflags -static" -o runtimetest ./cmd/runtimetest
if [ $# -eq 0 ]; then
  set -- $(ls validation | grep -v '^util$' | sort)
fi
for t in "$@"; do
  [ -f "validation/$t/$t.go" ] || { echo "no test $t" >&2; exit 2; }
  if [ ! -x "validation/$t/$t.t" ] || [ "validation/$t/$t.go" -nt "validation/$t/$t.t" ] || [ validation/util/test.go -nt "validation/$t/$t.t" ]; then
    go build -o "validation/$t/$t.t" "./validation/$t/$t.go" || exit 1
  fi
done

printf 'test\tresult\tstatus\tok\tnot_ok\tskipped\n' > "$out/summary.tsv"
for t in "$@"; do
  start=$(date +%s)
  RUNTIME=$runtime timeout -k 10 "$timeout_s" "validation/$t/$t.t" > "$out/$t.tap" 2> "$out/$t.err" < /dev/null
  rc=$?
  # Check lines of the test's own TAP stream and of any runtimetest stream it embeds.
  ok=$(grep -cE '^ok [0-9]+' "$out/$t.tap" | tr -d ' ')
  skip=$(grep -cE '^ok [0-9]+.*# SKIP' "$out/$t.tap" | tr -d ' ')
  notok=$(grep -cE '^not ok [0-9]+' "$out/$t.tap" | tr -d ' ')
  ok=$((ok - skip))
  # Tests without check lines count as one check. The lifecycle tests (hooks, poststart, ...)
  # pass when they exit 0 with a plan of "1..0" and no diagnostic; process_*_fail print nothing
  # and pass by exiting 0 (create refused the config). Any other test that printed nothing
  # failed (its container died before runtimetest wrote a line).
  if [ $((ok + notok + skip)) -eq 0 ]; then
    if [ $rc -eq 0 ] && ! grep -q '^  ---' "$out/$t.tap" &&
       { grep -q '^1\.\.0' "$out/$t.tap" || { [[ $t == process_*_fail ]] && [ ! -s "$out/$t.tap" ]; }; }; then
      ok=1
    else
      notok=1
    fi
  elif [ $rc -ne 0 ] && [ $notok -eq 0 ]; then
    notok=1
  fi
  result=fail
  [ $rc -eq 0 ] && [ $notok -eq 0 ] && result=pass
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$result" "$rc" "$ok" "$notok" "$skip" >> "$out/summary.tsv"
  printf '%-40s %-4s rc=%-3s ok=%-4s not_ok=%-4s skip=%-4s %ss\n' "$t" "$result" "$rc" "$ok" "$notok" "$skip" "$(( $(date +%s) - start ))"
done
# Bundles live in $TMPDIR/ocitest*. With rootfsPropagation "shared", a runtime can (runc 1.1.5 did)
# leak the container's mounts (proc, sys, dev...) back to the host when a test stops before
# cleaning up: unmount them, so that nothing (rm -rf included) walks into the host's /proc or /sys.
leaked=$(awk '$5 ~ "^" tmp "/ocitest" { print $5 }' tmp="${TMPDIR:-/tmp}" /proc/self/mountinfo | sort -r)
for m in $leaked; do umount -l "$m" 2>/dev/null && echo "conformance: unmounted $m, leaked by a test" >&2; done
awk -F'\t' 'NR > 1 { n++; if ($2 == "pass") p++; ok += $4; bad += $5; sk += $6 }
  END { printf "total\t%d/%d tests passed\t\t%d\t%d\t%d\n", p, n, ok, bad, sk }' "$out/summary.tsv" | tee -a "$out/summary.tsv"
