#!/usr/bin/env bash
# Fuzzes Moat's untrusted-input decoders with libFuzzer and AddressSanitizer.
#
#   Tests/Fuzz/fuzz.sh [-t SECONDS] [-j JOBS] [--update-corpus] [TARGET...]
#
# Builds moat-fuzz with --sanitize fuzzer,address into .build-fuzz, then runs
# each TARGET (default: all) for SECONDS (default 600) from its committed
# corpus and dictionary. New inputs go to a scratch corpus; --update-corpus
# merges the interesting ones into Tests/Fuzz/corpus/TARGET. A crash leaves
# its input in $MOAT_FUZZ_ARTIFACTS (default /var/tmp/moat-fuzz) and makes
# the script fail; replay it with `.build/debug/moat-fuzz TARGET FILE`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH="/opt/swift/usr/bin:$PATH"

secs=600 jobs=1 update=0 targets=()
while [ $# -gt 0 ]; do
    case "$1" in
        -t) secs="$2"; shift 2 ;;
        -j) jobs="$2"; shift 2 ;;
        --update-corpus) update=1; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done
# Every target has a corpus directory; without names, all of them.
[ ${#targets[@]} -gt 0 ] || for d in Tests/Fuzz/corpus/*/; do targets+=("$(basename "$d")"); done

# swiftc keeps only the last -sanitize= it is given, and SwiftPM passes one
# per --sanitize: without the combined flag last, ASan silently replaces the
# coverage instrumentation and libFuzzer fuzzes blind. (The --sanitize
# flags are still needed: they make SwiftPM link libFuzzer's main instead of
# the target's, and instrument the C targets.)
set +o pipefail
swift build --product moat-fuzz --sanitize fuzzer --sanitize address -Xswiftc -sanitize=fuzzer,address \
    -Xswiftc -DFUZZING --scratch-path .build-fuzz 2>&1 | grep -v "warning:" | tail -3
set -o pipefail
[ -x .build-fuzz/debug/moat-fuzz ] || { echo "fuzz.sh: the fuzzer build failed" >&2; exit 1; }
bin=.build-fuzz/debug/moat-fuzz
artifacts="${MOAT_FUZZ_ARTIFACTS:-/var/tmp/moat-fuzz}"
mkdir -p "$artifacts"

# The Gofer target's directory trees live here (it runs as nobody, who must
# be able to reach them), and go with everything else when the script ends.
export TMPDIR=$(mktemp -d /var/tmp/moat-fuzz-tmp.XXXXXX)
chmod 0711 "$TMPDIR"
scratch=""
trap 'rm -rf "$TMPDIR" $scratch' EXIT

status=0
for t in "${targets[@]}"; do
    [ -d "Tests/Fuzz/corpus/$t" ] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
    # Writable by the unprivileged user the Gofer target becomes.
    scratch=$(mktemp -d /var/tmp/moat-fuzz-corpus.XXXXXX)
    chmod 0777 "$scratch"
    dict=()
    [ -f "Tests/Fuzz/dict/$t.dict" ] && dict=(-dict="Tests/Fuzz/dict/$t.dict")
    log="$artifacts/$t.log"
    # -jobs runs workers that log to fuzz-N.log in the current directory:
    # only when asked for, and then from the artifacts directory.
    par=()
    [ "$jobs" -gt 1 ] && par=(-jobs="$jobs" -workers="$jobs")
    echo "== $t: ${secs}s, log $log"
    # Swift's own backtracer would take the crash before libFuzzer saves the input.
    if MOAT_FUZZ_TARGET="$t" SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
        "$bin" -max_total_time="$secs" -timeout=30 -rss_limit_mb=4096 -max_len=16384 \
        "${par[@]}" "${dict[@]}" -artifact_prefix="$artifacts/$t-" -print_final_stats=1 \
        "$scratch" "Tests/Fuzz/corpus/$t" >"$log" 2>&1; then
        grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+.*DONE" "$log" | sed "s/^/  /" || true
        if [ "$update" = 1 ]; then
            # Merge into a directory anyone may write, then keep what is new.
            merged=$(mktemp -d /var/tmp/moat-fuzz-merged.XXXXXX); chmod 0777 "$merged"
            MOAT_FUZZ_TARGET="$t" SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 \
                "$bin" -merge=1 "$merged" "Tests/Fuzz/corpus/$t" "$scratch" >>"$log" 2>&1 || true
            before=$(ls "Tests/Fuzz/corpus/$t" | wc -l)
            # libFuzzer names inputs by their SHA-1: skip what is already here.
            have=" $(sha1sum "Tests/Fuzz/corpus/$t"/* | cut -d' ' -f1 | tr '\n' ' ') "
            for f in "$merged"/*; do
                [ -f "$f" ] || continue
                case "$have" in *" $(basename "$f") "*) ;; *) cp "$f" "Tests/Fuzz/corpus/$t/" ;; esac
            done
            echo "  corpus: $before -> $(ls "Tests/Fuzz/corpus/$t" | wc -l) files"
            rm -rf "$merged"
        fi
    else
        status=1
        echo "  CRASH or failure in $t: see $log and $artifacts/$t-*" >&2
        grep -E "ERROR|Fatal error|SUMMARY|Test unit written" "$log" | head -5 | sed "s/^/  /" >&2
    fi
    rm -rf "$scratch"; scratch=""
done
exit $status
