/*
 * bench.h -- shared pieces of the C benchmark harness.
 *
 * Why the loops live in C: one get or set costs 1-3 ns, a call from
 * Python into C costs 60-150 ns, so timing single calls from Python
 * measures the call, not the storage design.  Every case below runs its
 * own loop of `n` operations and is timed as a whole with
 * clock_gettime(CLOCK_MONOTONIC).
 *
 * The loop shape is the same for every case (see LOOP_BODY users):
 *
 *     for (i = 0; i < n; i++) {
 *         obj = table[i & OBJ_MASK];     load the object pointer
 *         LAUNDER(obj);                  the compiler forgets what it is
 *         acc += <operation on obj>;     the case's own work
 *     }
 *
 * LAUNDER is an empty asm statement that claims to modify the pointer.
 * It emits no instruction, but the compiler can no longer prove that two
 * iterations touch the same memory, so it cannot hoist the operation's
 * loads out of the loop, fold iterations together or vectorise them.
 * The index is laundered once before the loop for the same reason: a
 * real consumer keeps its index in a variable, not a constant.  The sum
 * is returned so that no case is dead code.  The operations of one
 * iteration do not depend on the previous iteration's result, so the
 * figures are throughput per operation, as in a loop of a JIT that
 * looks up the data of many code objects.
 *
 * The `_chain` variants measure latency instead: object i holds the
 * value i + 1, and the value read selects the next object, so every
 * operation waits for the one before (a pointer chase through all 64
 * objects).  Extra checks that run in parallel with the loads cost
 * little there, while they cost issue slots in the throughput loop.
 */
#ifndef COEXTRA_BENCH_H
#define COEXTRA_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

/* 64 objects: the working set stays in L1, so the figures measure the
   code path and not the cache hierarchy. */
#define OBJ_COUNT 64
#define OBJ_MASK (OBJ_COUNT - 1)

#define LAUNDER(x) __asm__ volatile("" : "+r"(x))

/* A case runs n operations and returns a sum that depends on them. */
typedef uintptr_t (*bench_case_fn)(size_t n);

typedef struct {
    const char *name;
    bench_case_fn run;
} bench_case;

static inline double
bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Set by the case groups; read by main to keep results alive. */
extern volatile uintptr_t bench_sink;

/* Each group sets up its objects once and lists its cases. */
int base_setup(void);
void base_teardown(void);
extern const bench_case base_cases[];
extern const size_t base_case_count;

int reference_setup(void);
void reference_teardown(void);
extern const bench_case reference_cases[];
extern const size_t reference_case_count;

int cpython_setup(void);
void cpython_teardown(void);
extern const bench_case cpython_cases[];
extern const size_t cpython_case_count;

/* Per-code-object cost of the reference's constructor-hook chain. */
int reference_hook_ns(size_t n, int hooks, double *ns_per_code);
/* Extra bytes of one reference code object with k consumers. */
int reference_memory(int consumers, long *extra_bytes, long *size);
/* Code watcher cost per PyCode_NewEmpty (3.12+); -1 if unavailable. */
int cpython_watch_ns(size_t n, int watchers, double *ns_per_code);
/* Compile the sources once: total ns, code objects created and files
   that failed to compile. */
int cpython_compile(char **sources, char **paths, int count, int watcher,
                    double *ns, long *codes, long *failed);

#endif /* COEXTRA_BENCH_H */
