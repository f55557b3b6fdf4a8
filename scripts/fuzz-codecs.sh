#!/usr/bin/env bash
# Builds the C codecs with AddressSanitizer + UndefinedBehaviorSanitizer into a temp dir and
# feeds the build mutated inputs (tests/unit/codecs_fuzz_driver.py). Exits non-zero on any
# sanitizer report (they abort), any exception other than the codec error, or a build error.
# usage: scripts/fuzz-codecs.sh [COUNT=100000] [SEED=12]     (run by tests/unit/test_codecs_sanitized.py)
set -euo pipefail

ATP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${ATP_PYTHON:-$ATP_ROOT/.venv/bin/python}"
[ -x "$PY" ] || PY=python3
COUNT="${1:-100000}"
SEED="${2:-12}"
CC="${CC:-gcc}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

include="$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
suffix="$("$PY" -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
so="$tmp/_codecs$suffix"
"$CC" -shared -fPIC -std=c11 -Wall -Wextra -Wno-unused-parameter -Werror \
    -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1 \
    -I"$include" -I"$ATP_ROOT/atp_notebook/spice/codecs/src" -o "$so" "$ATP_ROOT"/atp_notebook/spice/codecs/src/*.c -llz4

asan="$("$CC" -print-file-name=libasan.so)"
ubsan="$("$CC" -print-file-name=libubsan.so)"
cd "$ATP_ROOT"
LD_PRELOAD="$asan $ubsan" \
ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:allocator_may_return_null=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    "$PY" -m tests.unit.codecs_fuzz_driver "$so" "$COUNT" "$SEED"
