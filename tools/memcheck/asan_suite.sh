#!/bin/sh
# Run the conformance suite against the reference built with ASan and
# UBSan as a plain shared library loaded by path.
#
#   sh tools/memcheck/asan_suite.sh [pytest options...]
#
# The ASan runtime must be loaded before the Python interpreter, hence
# LD_PRELOAD.  Leak detection is off for this run: CPython does not free
# everything at exit, which LeakSanitizer would report; the library's
# leaks are checked by `run.sh asan` and `run.sh` (valgrind) through the
# C driver instead.  Any ASan or UBSan report aborts the run.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${BUILD_DIR:-$root/build}
python=${PYTHON:-python}
lib=$out/libcoextra_ref_asan.so

"$python" "$root/reference_impl/build_shared.py" \
    --sanitize address,undefined -o "$lib"
libasan=$("${CC:-gcc}" -print-file-name=libasan.so)
LD_PRELOAD=$libasan \
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1 \
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    exec "$python" -m pytest -p no:cacheprovider \
    --pyargs coextra_conformance --coextra-impl="$lib" "$@"
