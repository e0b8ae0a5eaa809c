#!/bin/sh
# Build the memcheck driver against the reference C sources and replay
# every sequence in sequences/.
#
#   sh tools/memcheck/run.sh            valgrind memcheck (the default)
#   sh tools/memcheck/run.sh asan       ASan + UBSan, with leak detection
#   sh tools/memcheck/run.sh tsan       ThreadSanitizer
#
# Exits non-zero on any memory error, definitely or indirectly lost
# byte, failed expectation in a sequence, value not freed exactly once,
# or heap block of the library still live after the final cleanup.
# Binaries go to $BUILD_DIR (default: build/memcheck in the repository).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${BUILD_DIR:-$root/build/memcheck}
src=$root/reference_impl/src
# The library's sources; table.c, its C-ABI export, is not needed.
lib_sources=$(ls "$src"/*.c | grep -v '/table\.c$')
cc=${CC:-gcc}
mkdir -p "$out"

case "${1:-valgrind}" in
valgrind)
    "$cc" -Wall -Wextra -Werror -std=c11 -g -O1 -pthread -I "$src" \
        $lib_sources "$here/driver.c" -o "$out/driver"
    exec valgrind -q --error-exitcode=1 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect \
        "$out/driver" "$here"/sequences/*.txt
    ;;
asan)
    "$cc" -Wall -Wextra -Werror -std=c11 -g -O1 -pthread -I "$src" \
        -fsanitize=address,undefined -fno-sanitize-recover=all \
        -fno-omit-frame-pointer \
        $lib_sources "$here/driver.c" -o "$out/driver_asan"
    ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        exec "$out/driver_asan" "$here"/sequences/*.txt
    ;;
tsan)
    # ThreadSanitizer: data races in the library (sequences/threads.txt
    # runs the concurrent operations; the others are single-threaded).
    "$cc" -Wall -Wextra -Werror -std=c11 -g -O1 -pthread -I "$src" \
        -fsanitize=thread \
        $lib_sources "$here/driver.c" -o "$out/driver_tsan"
    TSAN_OPTIONS=halt_on_error=1 \
        exec "$out/driver_tsan" "$here"/sequences/*.txt
    ;;
*)
    echo "usage: $0 [valgrind|asan|tsan]" >&2
    exit 2
    ;;
esac
