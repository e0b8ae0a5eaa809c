#!/bin/sh
# Run the whole conformance suite against the reference implementation
# under valgrind memcheck, with CPython's allocator replaced by malloc so
# that every block is visible to valgrind.
#
#   sh tools/memcheck/valgrind_suite.sh [pytest options...]
#
# Fails on any memory error or definitely or indirectly lost block that
# cpython.supp does not attribute to the interpreter itself.  Tests that
# the suite isolates run in forked children, which valgrind checks too.
# No -n: xdist workers would start new interpreters outside valgrind.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python}
PYTHONMALLOC=malloc exec valgrind -q --error-exitcode=1 \
    --leak-check=full --errors-for-leak-kinds=definite,indirect \
    --show-leak-kinds=definite,indirect \
    --suppressions="$here/cpython.supp" --num-callers=30 \
    "$python" -m pytest -p no:cacheprovider -q \
    --pyargs coextra_conformance --coextra-impl=reference "$@"
