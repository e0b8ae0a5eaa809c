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
#
# valgrind runs one thread at a time, so the suite is split into two
# shards of test modules, each its own valgrind process, run side by
# side.  Not xdist: its workers are new interpreters that valgrind would
# have to follow with --trace-children, and a worker ends without the
# interpreter finalization that test_exit checks.  The shards are
# balanced by their time under valgrind; together they hold every module
# of the suite (a new module must be added to one of them, or the run
# stops with a message).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python}
tmp=${BUILD_DIR:-${TMPDIR:-/tmp}}
mkdir -p "$tmp"

shard_1="test_differential test_interp test_index test_store test_copy
test_exit test_00_names"
shard_2="test_thread test_bounds test_free test_hook test_alloc test_flag"

# Every module of the installed suite must be in exactly one shard.
modules=$("$python" -c '
import pathlib, coextra_conformance.tests as t
print(" ".join(sorted(p.stem for p in pathlib.Path(t.__file__).parent.glob("test_*.py"))))')
listed=$(printf '%s\n' $shard_1 $shard_2 | sort | tr '\n' ' ')
if [ "$listed" != "$modules " ]; then
    echo "valgrind_suite.sh: the shards list '$listed' but the suite has '$modules'; add each new module to shard_1 or shard_2" >&2
    exit 2
fi

run_shard() {
    args=""
    for module in $1; do
        args="$args coextra_conformance.tests.$module"
    done
    shift
    # shellcheck disable=SC2086  # module names are words by design
    PYTHONMALLOC=malloc valgrind -q --error-exitcode=1 \
        --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect \
        --suppressions="$here/cpython.supp" --num-callers=30 \
        "$python" -m pytest -p no:cacheprovider -q \
        --coextra-impl=reference --pyargs $args "$@"
}

log_1="$tmp/valgrind-shard-1.log"
log_2="$tmp/valgrind-shard-2.log"
run_shard "$shard_1" "$@" >"$log_1" 2>&1 &
pid_1=$!
status_2=0
run_shard "$shard_2" "$@" >"$log_2" 2>&1 || status_2=$?
status_1=0
wait "$pid_1" || status_1=$?
# A shard's verdict counts the other shard's requirements as untested:
# this run judges memory, not conformance (tox -e reference does that).
# shellcheck disable=SC2086  # one line per shard: its module names
echo "--- valgrind shard 1:" $shard_1
cat "$log_1"
# shellcheck disable=SC2086
echo "--- valgrind shard 2:" $shard_2
cat "$log_2"
# pytest exits 5 when it selected no test: with -k or similar options one
# shard may have nothing to run, but not both.
if [ "$status_1" -eq 5 ] && [ "$status_2" -eq 5 ]; then
    echo "valgrind_suite.sh: no test selected in either shard; check the pytest options" >&2
    exit 1
fi
[ "$status_1" -eq 5 ] && status_1=0
[ "$status_2" -eq 5 ] && status_2=0
if [ "$status_1" -ne 0 ] || [ "$status_2" -ne 0 ]; then
    echo "valgrind_suite.sh: shard 1 exited $status_1, shard 2 exited $status_2; the memcheck records or failures are above" >&2
    exit 1
fi
echo "valgrind memcheck: both shards clean"
