#!/usr/bin/env bash
# Builds the busybox root filesystem (cached) and runs every test suite.
set -euo pipefail
cd "$(dirname "$0")"
bash rootfs/busybox.sh
swift build --product moat
swift build --product moat-fuzz
swift test "$@"
