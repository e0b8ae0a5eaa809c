/*
 * harness.c -- like-for-like costs of per-code-object storage, measured
 * inside one CPython 3.13.15 build through what each design exports.
 *
 * Built once per build (unpatched or patched, with the GIL or
 * free-threaded) as a shared object that the tiny main.c loads, so every
 * call into CPython goes through the PLT exactly as from an extension
 * module; the interpreter is linked statically into main, as the
 * `python3.13` binary is.  The designs:
 *
 *   api       PyUnstable_Code_GetExtra/SetExtra on code objects created
 *             after the consumer's indices were requested.  On the
 *             unpatched build this is "stock"; on the patched build it is
 *             "pep", the inline slots (the harness checks the flag).
 *   api_late  the same functions on code objects created before the
 *             indices: "pep-late" on the patched build (out-of-line
 *             storage); on the unpatched build it should equal stock.
 *   table     the "watchers-table" counter-proposal (code_table.h): no
 *             co_extra at all, a hash table per consumer keyed by the
 *             code object, entries dropped by a code watcher's
 *             PY_CODE_EVENT_DESTROY.
 *
 * Operations (per case, see the loops below): get; set (a store with no
 * free function: a value into an empty slot, then NULL back, per store);
 * set_free (a store over a value whose index has a free function, which
 * runs every time); and empty, the loop with no operation, whose count
 * is subtracted from the instruction counts.
 *
 * Subcommands print one JSON object on stdout:
 *
 *   info                 build facts (patched, free-threaded, sizes)
 *   time US REPEATS      every case, samples of about US microseconds,
 *                        cases interleaved within each repeat
 *   count CASE N         one case with N operations, instrumented under
 *                        callgrind (client requests) and nothing else
 *   threads N REPEATS    reads of one code object by 1 and 2 threads
 *   selftest             check the watchers-table consumer's table
 *   run FILE [ARG...]    run a Python file with the `_lfl` module (index
 *                        request, get/set, flag, table size) importable
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "code_table.h"

#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND_H 1
#endif
#endif
#ifndef HAVE_CALLGRIND_H
#define HAVE_CALLGRIND_H 0
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#endif

#ifdef Py_HAVE_PEP9999
#define PATCHED 1
#else
#define PATCHED 0
#endif

#ifdef Py_GIL_DISABLED
#define FREE_THREADED 1
#else
#define FREE_THREADED 0
#endif

/* 64 code objects per set: the working set stays in L1, so the loops
   measure the code path, not the cache hierarchy. */
#define OBJ_COUNT 64
#define OBJ_MASK (OBJ_COUNT - 1)
/* Other code objects in each consumer's table, so that the table has the
   size it has in a program of a few modules, not a toy's. */
#define TABLE_OTHER_CODES 4032

/* An empty asm that claims to change x: no instruction, but the compiler
   can no longer hoist loads out of the loop or fold iterations. */
#define LAUNDER(x) __asm__ volatile("" : "+r"(x))

static volatile uintptr_t sink;
static volatile long frees;

/* The consumer's free function: it only counts, so what is measured is
   the mechanism that calls it. */
static void
count_free(void *value)
{
    (void)value;
    frees++;
}

/* Code objects created before any index (late) and after (inline). */
static PyObject *codes_late[OBJ_COUNT];
static PyObject *codes_inline[OBJ_COUNT];
static PyObject *codes_other[TABLE_OTHER_CODES];
/* get: values 1..64, no free function; pair: empty, no free function;
   free: values, with count_free. */
static Py_ssize_t get_index = -1, pair_index = -1, free_index = -1;
static code_table get_table, pair_table, free_table;
static int watcher_id = -1;
static int ready;

static int
table_watcher(PyCodeEvent event, PyCodeObject *co)
{
    if (event == PY_CODE_EVENT_DESTROY) {
        code_table_forget(&get_table, (PyObject *)co);
        code_table_forget(&pair_table, (PyObject *)co);
        code_table_forget(&free_table, (PyObject *)co);
    }
    return 0;
}

static int
make_codes(PyObject **codes, int count, int line)
{
    for (int i = 0; i < count; i++) {
        codes[i] = (PyObject *)PyCode_NewEmpty("lfl.py", "f", line + i);
        if (codes[i] == NULL) {
            return -1;
        }
    }
    return 0;
}

static int
setup(void)
{
    if (ready) {
        return 0;
    }
    /* Late code objects first: created while no index exists, they carry
       no inline storage on the patched build. */
    if (make_codes(codes_late, OBJ_COUNT, 1) < 0) {
        return -1;
    }
    get_index = PyUnstable_Eval_RequestCodeExtraIndex(NULL);
    pair_index = PyUnstable_Eval_RequestCodeExtraIndex(NULL);
    free_index = PyUnstable_Eval_RequestCodeExtraIndex(count_free);
    if (get_index < 0 || pair_index < 0 || free_index < 0) {
        return -1;
    }
    if (code_table_init(&get_table, NULL) < 0 ||
        code_table_init(&pair_table, NULL) < 0 ||
        code_table_init(&free_table, count_free) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    watcher_id = PyCode_AddWatcher(table_watcher);
    if (watcher_id < 0) {
        return -1;
    }
    if (make_codes(codes_inline, OBJ_COUNT, 1001) < 0 ||
        make_codes(codes_other, TABLE_OTHER_CODES, 2001) < 0) {
        return -1;
    }
#if PATCHED
    for (int i = 0; i < OBJ_COUNT; i++) {
        if (PyUnstable_Code_HasInlineExtra(codes_inline[i]) != 1 ||
            PyUnstable_Code_HasInlineExtra(codes_late[i]) != 0) {
            PyErr_SetString(PyExc_RuntimeError,
                            "inline flag not as expected: code objects "
                            "created after an index must be inline, "
                            "those created before must not");
            return -1;
        }
    }
#endif
    for (int i = 0; i < OBJ_COUNT; i++) {
        void *value = (void *)(uintptr_t)(i + 1);
        PyObject *both[2] = {codes_inline[i], codes_late[i]};
        for (int k = 0; k < 2; k++) {
            if (PyUnstable_Code_SetExtra(both[k], get_index, value) < 0 ||
                PyUnstable_Code_SetExtra(both[k], free_index, value) < 0) {
                return -1;
            }
        }
    }
    /* The other entries are interleaved with the measured ones so that
       the measured keys are not all at the front of their probe runs. */
    int step = TABLE_OTHER_CODES / OBJ_COUNT;
    for (int i = 0; i < TABLE_OTHER_CODES; i++) {
        void *one = (void *)(uintptr_t)1;
        if (code_table_set(&get_table, codes_other[i], one) < 0 ||
            code_table_set(&pair_table, codes_other[i], one) < 0 ||
            code_table_set(&free_table, codes_other[i], one) < 0) {
            return -1;
        }
        if (i % step == 0) {
            int k = i / step;
            void *value = (void *)(uintptr_t)(k + 1);
            if (code_table_set(&get_table, codes_inline[k], value) < 0 ||
                code_table_set(&free_table, codes_inline[k], value) < 0) {
                return -1;
            }
        }
    }
    ready = 1;
    return 0;
}

/* ---- the loops ------------------------------------------------------ */

/* The loop with no operation: what every case spends besides its
   operation (load the object, launder it, add to the sum). */
static uintptr_t __attribute__((noinline))
case_empty(size_t n)
{
    uintptr_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        PyObject *co = codes_inline[i & OBJ_MASK];
        LAUNDER(co);
        acc += (uintptr_t)co;
    }
    return acc;
}

static inline uintptr_t
api_get_loop(PyObject **codes, size_t n)
{
    uintptr_t acc = 0;
    Py_ssize_t index = get_index;
    LAUNDER(index);
    for (size_t i = 0; i < n; i++) {
        PyObject *co = codes[i & OBJ_MASK];
        void *value;
        LAUNDER(co);
        /* The result is checked, as a consumer must. */
        if (PyUnstable_Code_GetExtra(co, index, &value) < 0) {
            return 0;
        }
        acc += (uintptr_t)value;
    }
    return acc;
}

/* n stores: a value into the empty slot, then NULL back over it. */
static inline uintptr_t
api_set_loop(PyObject **codes, size_t n)
{
    uintptr_t acc = 0;
    Py_ssize_t index = pair_index;
    LAUNDER(index);
    for (size_t i = 0; i < n / 2; i++) {
        PyObject *co = codes[i & OBJ_MASK];
        LAUNDER(co);
        acc += (uintptr_t)PyUnstable_Code_SetExtra(co, index,
                                                   (void *)(uintptr_t)(i + 1));
        acc += (uintptr_t)PyUnstable_Code_SetExtra(co, index, NULL);
    }
    return acc;
}

/* Every store replaces a different non-NULL value: the free function
   runs once per store. */
static inline uintptr_t
api_set_free_loop(PyObject **codes, size_t n)
{
    uintptr_t acc = 0;
    Py_ssize_t index = free_index;
    LAUNDER(index);
    for (size_t i = 0; i < n; i++) {
        PyObject *co = codes[i & OBJ_MASK];
        LAUNDER(co);
        acc += (uintptr_t)PyUnstable_Code_SetExtra(
            co, index, (void *)(uintptr_t)(i + OBJ_COUNT + 1));
    }
    return acc;
}

static uintptr_t __attribute__((noinline))
case_api_get(size_t n)
{
    return api_get_loop(codes_inline, n);
}

static uintptr_t __attribute__((noinline))
case_api_set(size_t n)
{
    return api_set_loop(codes_inline, n);
}

static uintptr_t __attribute__((noinline))
case_api_set_free(size_t n)
{
    return api_set_free_loop(codes_inline, n);
}

static uintptr_t __attribute__((noinline))
case_api_late_get(size_t n)
{
    return api_get_loop(codes_late, n);
}

static uintptr_t __attribute__((noinline))
case_api_late_set(size_t n)
{
    return api_set_loop(codes_late, n);
}

static uintptr_t __attribute__((noinline))
case_api_late_set_free(size_t n)
{
    return api_set_free_loop(codes_late, n);
}

static uintptr_t __attribute__((noinline))
case_table_get(size_t n)
{
    uintptr_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        PyObject *co = codes_inline[i & OBJ_MASK];
        LAUNDER(co);
        acc += (uintptr_t)code_table_get(&get_table, co);
    }
    return acc;
}

static uintptr_t __attribute__((noinline))
case_table_set(size_t n)
{
    uintptr_t acc = 0;
    for (size_t i = 0; i < n / 2; i++) {
        PyObject *co = codes_inline[i & OBJ_MASK];
        LAUNDER(co);
        acc += (uintptr_t)code_table_set(&pair_table, co,
                                         (void *)(uintptr_t)(i + 1));
        acc += (uintptr_t)code_table_set(&pair_table, co, NULL);
    }
    return acc;
}

static uintptr_t __attribute__((noinline))
case_table_set_free(size_t n)
{
    uintptr_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        PyObject *co = codes_inline[i & OBJ_MASK];
        LAUNDER(co);
        acc += (uintptr_t)code_table_set(
            &free_table, co, (void *)(uintptr_t)(i + OBJ_COUNT + 1));
    }
    return acc;
}

typedef struct {
    const char *name;
    uintptr_t (*run)(size_t n);
    /* The set loops store twice per iteration: their share of the empty
       loop's cost per operation is 1/2. */
    int ops_per_iteration;
} bench_case;

static const bench_case cases[] = {
    {"empty", case_empty, 1},
    {"api_get", case_api_get, 1},
    {"api_set", case_api_set, 2},
    {"api_set_free", case_api_set_free, 1},
    {"api_late_get", case_api_late_get, 1},
    {"api_late_set", case_api_late_set, 2},
    {"api_late_set_free", case_api_late_set_free, 1},
    {"table_get", case_table_get, 1},
    {"table_set", case_table_set, 2},
    {"table_set_free", case_table_set_free, 1},
};
#define CASE_COUNT (sizeof(cases) / sizeof(cases[0]))

/* ---- commands ------------------------------------------------------- */

static double
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Operations that make one sample last about target_ns; the calibration
   doubles as the warm-up.  Even, because the set loops store in pairs. */
static size_t
calibrate(const bench_case *c, double target_ns)
{
    size_t n = 1000;
    for (;;) {
        double start = now_ns();
        sink += c->run(n);
        double spent = now_ns() - start;
        if (spent >= target_ns / 4 || n >= ((size_t)1 << 40)) {
            double scaled = (double)n * target_ns / (spent > 1 ? spent : 1);
            size_t out = scaled < 1000 ? 1000 : (size_t)scaled;
            return out & ~(size_t)1;
        }
        n *= 2;
    }
}

static int
cmd_time(double target_us, int repeats)
{
    size_t n[CASE_COUNT];
    double *ns = calloc(CASE_COUNT * (size_t)repeats, sizeof(double));
    if (ns == NULL) {
        return 1;
    }
    for (size_t c = 0; c < CASE_COUNT; c++) {
        n[c] = calibrate(&cases[c], target_us * 1e3);
    }
    /* Short samples, cases interleaved within each repeat: a slow phase
       of a shared machine hits every case, and the minimum over many
       short samples is the undisturbed cost. */
    for (int r = 0; r < repeats; r++) {
        for (size_t c = 0; c < CASE_COUNT; c++) {
            double start = now_ns();
            sink += cases[c].run(n[c]);
            ns[c * (size_t)repeats + (size_t)r] =
                (now_ns() - start) / (double)n[c];
        }
    }
    printf("{\"repeats\": %d, \"iterations\": {", repeats);
    for (size_t c = 0; c < CASE_COUNT; c++) {
        printf("%s\"%s\": %zu", c ? ", " : "", cases[c].name, n[c]);
    }
    printf("}, \"cases\": {");
    for (size_t c = 0; c < CASE_COUNT; c++) {
        printf("%s\"%s\": [", c ? ", " : "", cases[c].name);
        for (int r = 0; r < repeats; r++) {
            printf("%s%.4f", r ? ", " : "", ns[c * (size_t)repeats + r]);
        }
        printf("]");
    }
    printf("}, \"frees\": %ld}\n", (long)frees);
    free(ns);
    return 0;
}

static int
cmd_count(const char *name, size_t n)
{
    for (size_t c = 0; c < CASE_COUNT; c++) {
        if (strcmp(cases[c].name, name) != 0) {
            continue;
        }
        /* One uninstrumented pass first: the first stores allocate
           (stock's extra block, the out-of-line entries, table
           growth), which the loop in steady state never does. */
        sink += cases[c].run(n);
        CALLGRIND_START_INSTRUMENTATION;
        sink += cases[c].run(n);
        CALLGRIND_STOP_INSTRUMENTATION;
        printf("{\"case\": \"%s\", \"n\": %zu, \"ops_per_iteration\": %d, "
               "\"instrumented_region\": %s}\n",
               name, n, cases[c].ops_per_iteration,
               HAVE_CALLGRIND_H ? "true" : "false");
        return 0;
    }
    fprintf(stderr, "count: unknown case %s\n", name);
    return 2;
}

/* ---- threads -------------------------------------------------------- */

typedef struct {
    int design; /* 0 api, 1 api_late, 2 table */
    size_t n;
    pthread_barrier_t *start;
    uintptr_t sum;
    double cpu_ns;           /* the thread's CPU time in its loop */
    double begin_ns, end_ns; /* wall clock around its loop */
    int failed;
} reader;

static double
thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *
reader_main(void *arg)
{
    reader *r = arg;
    PyGILState_STATE state = PyGILState_Ensure();
    PyObject *co = r->design == 1 ? codes_late[0] : codes_inline[0];
    Py_ssize_t index = get_index;
    uintptr_t acc = 0;
    pthread_barrier_wait(r->start);
    r->begin_ns = now_ns();
    double cpu_start = thread_cpu_ns();
    for (size_t i = 0; i < r->n; i++) {
        PyObject *o = co;
        LAUNDER(o);
        if (r->design == 2) {
            acc += (uintptr_t)code_table_get(&get_table, o);
            continue;
        }
        void *value;
        if (PyUnstable_Code_GetExtra(o, index, &value) < 0) {
            r->failed = 1;
            break;
        }
        acc += (uintptr_t)value;
    }
    r->cpu_ns = thread_cpu_ns() - cpu_start;
    r->end_ns = now_ns();
    r->sum = acc;
    PyGILState_Release(state);
    return NULL;
}

/* Wall time of `threads` readers doing n reads each of one code object,
   from the first one's start to the last one's end (each thread reads
   the clock itself: the main thread may wake up late from the barrier),
   and the most CPU time one of them spent in its loop. */
static int
time_readers(int design, int threads, size_t n, double *ns, double *cpu)
{
    pthread_t ids[2];
    reader readers[2];
    pthread_barrier_t start;
    int rc = 0;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    /* Detach (release the GIL on a default build) while the readers
       run, as Py_BEGIN_ALLOW_THREADS does. */
    PyThreadState *saved = PyEval_SaveThread();
    for (int t = 0; t < threads; t++) {
        readers[t] = (reader){design, n, &start, 0, 0.0, 0.0, 0.0, 0};
        pthread_create(&ids[t], NULL, reader_main, &readers[t]);
    }
    pthread_barrier_wait(&start);
    double begin = 0.0, end = 0.0;
    *cpu = 0.0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        rc |= readers[t].failed;
        sink += readers[t].sum;
        if (t == 0 || readers[t].begin_ns < begin) {
            begin = readers[t].begin_ns;
        }
        end = readers[t].end_ns > end ? readers[t].end_ns : end;
        *cpu = readers[t].cpu_ns > *cpu ? readers[t].cpu_ns : *cpu;
    }
    *ns = end - begin;
    PyEval_RestoreThread(saved);
    pthread_barrier_destroy(&start);
    return rc ? -1 : 0;
}

static int
cmd_threads(size_t n, int repeats)
{
    static const char *const designs[] = {"api", "api_late", "table"};
    /* best[design][threads - 1]: least wall time over the repeats;
       cpu[...]: least CPU time of the slowest thread. */
    double best[3][2], cpu[3][2];
    for (int r = 0; r < repeats; r++) {
        for (int d = 0; d < 3; d++) {
            for (int t = 1; t <= 2; t++) {
                double ns, cpu_ns;
                if (time_readers(d, t, n, &ns, &cpu_ns) < 0) {
                    return 1;
                }
                if (r == 0 || ns < best[d][t - 1]) {
                    best[d][t - 1] = ns;
                }
                if (r == 0 || cpu_ns < cpu[d][t - 1]) {
                    cpu[d][t - 1] = cpu_ns;
                }
            }
        }
    }
    printf("{\"reads_per_thread\": %zu, \"repeats\": %d, \"designs\": {", n,
           repeats);
    for (int d = 0; d < 3; d++) {
        /* Reads per second, all threads together. */
        double one = (double)n / best[d][0] * 1e9;
        double two = 2.0 * (double)n / best[d][1] * 1e9;
        /* The same from each thread's CPU time: what contention costs a
           thread that is running, whatever else the machine runs. */
        double ratio_cpu = 2.0 * cpu[d][0] / cpu[d][1];
        printf("%s\"%s\": {\"reads_per_s_1\": %.0f, \"reads_per_s_2\": %.0f, "
               "\"ratio\": %.4f, \"ratio_cpu\": %.4f}",
               d ? ", " : "", designs[d], one, two, two / one, ratio_cpu);
    }
    printf("}}\n");
    return 0;
}

/* ---- selftest ------------------------------------------------------- */

#define SELFTEST_KEYS 5000

/* The watchers-table design must be right before its speed means
   anything: lookups after growth and after backward-shift deletions,
   and entries dropped (and values freed) by the watcher's DESTROY. */
static int
cmd_selftest(void)
{
    code_table t;
    static PyObject *keys[SELFTEST_KEYS];
    if (code_table_init(&t, NULL) < 0) {
        return 1;
    }
    for (uintptr_t i = 0; i < SELFTEST_KEYS; i++) {
        keys[i] = (PyObject *)(uintptr_t)(0x10000000 + 208 * (i + 1));
        if (code_table_set(&t, keys[i], (void *)(i + 1)) < 0) {
            return 1;
        }
    }
    for (uintptr_t i = 0; i < SELFTEST_KEYS; i += 2) {
        if (code_table_set(&t, keys[i], NULL) < 0) {
            return 1;
        }
    }
    int bad = 0;
    for (uintptr_t i = 0; i < SELFTEST_KEYS; i++) {
        void *want = i % 2 ? (void *)(i + 1) : NULL;
        bad += code_table_get(&t, keys[i]) != want;
    }
    bad += t.used != SELFTEST_KEYS / 2;
    bad += 2 * t.used > t.mask + 1;
    code_table_fini(&t);
    /* The watcher: a code object with a value in the free table is
       destroyed; its entry must go and its value be freed once. */
    long frees_before = frees;
    size_t used_before = free_table.used;
    PyObject *co = (PyObject *)PyCode_NewEmpty("lfl.py", "selftest", 1);
    if (co == NULL ||
        code_table_set(&free_table, co, (void *)(uintptr_t)7) < 0) {
        return 1;
    }
    bad += free_table.used != used_before + 1;
    Py_DECREF(co);
    /* Free-threaded 3.13 defers the reference counting of code objects:
       only the collector frees them. */
    PyGC_Collect();
    bad += free_table.used != used_before;
    bad += frees != frees_before + 1;
    printf("{\"selftest\": %s, \"failures\": %d}\n", bad ? "false" : "true",
           bad);
    return bad ? 1 : 0;
}

/* ---- the _lfl module for `run` -------------------------------------- */

static PyObject *
lfl_request_index(PyObject *self, PyObject *noargs)
{
    (void)self;
    (void)noargs;
    Py_ssize_t index = PyUnstable_Eval_RequestCodeExtraIndex(count_free);
    return index < 0 ? NULL : PyLong_FromSsize_t(index);
}

static PyObject *
lfl_set_extra(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *code;
    Py_ssize_t index, value;
    if (!PyArg_ParseTuple(args, "Onn", &code, &index, &value)) {
        return NULL;
    }
    if (PyUnstable_Code_SetExtra(code, index, (void *)(uintptr_t)value) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
lfl_get_extra(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *code;
    Py_ssize_t index;
    void *value;
    if (!PyArg_ParseTuple(args, "On", &code, &index)) {
        return NULL;
    }
    if (PyUnstable_Code_GetExtra(code, index, &value) < 0) {
        return NULL;
    }
    return PyLong_FromSsize_t((Py_ssize_t)(uintptr_t)value);
}

static PyObject *
lfl_has_inline(PyObject *self, PyObject *code)
{
    (void)self;
#if PATCHED
    int inline_flag = PyUnstable_Code_HasInlineExtra(code);
    if (inline_flag < 0) {
        return NULL;
    }
    return PyBool_FromLong(inline_flag);
#else
    (void)code;
    Py_RETURN_NONE;
#endif
}

/* Bytes a watchers-table consumer's table takes when it holds n entries
   (filled with n distinct fake addresses, never dereferenced). */
static PyObject *
lfl_table_bytes(PyObject *self, PyObject *arg)
{
    (void)self;
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0) {
        return PyErr_Occurred() ? NULL : PyLong_FromLong(0);
    }
    code_table t;
    if (code_table_init(&t, NULL) < 0) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = (PyObject *)(uintptr_t)(0x10000000 + 208 * (i + 1));
        if (code_table_set(&t, key, (void *)(uintptr_t)1) < 0) {
            code_table_fini(&t);
            return NULL;
        }
    }
    size_t bytes = code_table_bytes(&t);
    code_table_fini(&t);
    return PyLong_FromSize_t(bytes);
}

static PyMethodDef lfl_methods[] = {
    {"request_index", lfl_request_index, METH_NOARGS,
     "Request an extra index (with a counting free function)."},
    {"set_extra", lfl_set_extra, METH_VARARGS,
     "set_extra(code, index, value): PyUnstable_Code_SetExtra."},
    {"get_extra", lfl_get_extra, METH_VARARGS,
     "get_extra(code, index): PyUnstable_Code_GetExtra."},
    {"has_inline", lfl_has_inline, METH_O,
     "PyUnstable_Code_HasInlineExtra, or None on an unpatched build."},
    {"table_bytes", lfl_table_bytes, METH_O,
     "Bytes of a watchers-table consumer's table holding n entries."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef lfl_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_lfl",
    .m_doc = "Like-for-like benchmark helpers.",
    .m_size = -1,
    .m_methods = lfl_methods,
};

static PyObject *
lfl_init(void)
{
    PyObject *m = PyModule_Create(&lfl_module);
    if (m == NULL) {
        return NULL;
    }
#ifdef Py_GIL_DISABLED
    PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    if (PyModule_AddIntConstant(m, "patched", PATCHED) < 0 ||
        PyModule_AddIntConstant(m, "free_threaded", FREE_THREADED) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

static int
cmd_run(int argc, char **argv)
{
    /* argv[0] is the file; the script sees sys.argv = [FILE, ARG...]. */
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return 1;
    }
    for (int i = 0; i < argc; i++) {
        PyObject *s = PyUnicode_DecodeFSDefault(argv[i]);
        if (s == NULL || PyList_Append(list, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(list);
            return 1;
        }
        Py_DECREF(s);
    }
    int rc = PySys_SetObject("argv", list);
    Py_DECREF(list);
    if (rc < 0) {
        return 1;
    }
    FILE *f = fopen(argv[0], "r");
    if (f == NULL) {
        fprintf(stderr, "run: cannot open %s\n", argv[0]);
        return 1;
    }
    rc = PyRun_SimpleFileExFlags(f, argv[0], 1, NULL);
    return rc == 0 ? 0 : 1;
}

static int
cmd_info(void)
{
    PyObject *co = (PyObject *)PyCode_NewEmpty("lfl.py", "f", 1);
    if (co == NULL) {
        return 1;
    }
    printf("{\"version\": \"%s\", \"patched\": %s, \"free_threaded\": %s, "
           "\"callgrind_h\": %s, \"sizeof_PyCodeObject\": %zu, "
           "\"code_table_entry\": %zu}\n",
           PY_VERSION, PATCHED ? "true" : "false",
           FREE_THREADED ? "true" : "false",
           HAVE_CALLGRIND_H ? "true" : "false", sizeof(PyCodeObject),
           sizeof(code_table_entry));
    Py_DECREF(co);
    return 0;
}

static void
usage(void)
{
    fprintf(stderr, "usage: lfl info | time US REPEATS | count CASE N | "
                    "threads N REPEATS | selftest | run FILE [ARG...]\n");
}

int
lfl_main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    if (PyImport_AppendInittab("_lfl", lfl_init) < 0) {
        return 1;
    }
    Py_InitializeEx(0);
    int rc;
    if (strcmp(argv[1], "run") == 0 && argc >= 3) {
        rc = cmd_run(argc - 2, argv + 2);
    } else if (strcmp(argv[1], "info") == 0) {
        rc = cmd_info();
    } else if (setup() < 0) {
        PyErr_Print();
        rc = 1;
    } else if (strcmp(argv[1], "time") == 0 && argc == 4) {
        rc = cmd_time(atof(argv[2]), atoi(argv[3]));
    } else if (strcmp(argv[1], "count") == 0 && argc == 4) {
        rc = cmd_count(argv[2], strtoul(argv[3], NULL, 10));
    } else if (strcmp(argv[1], "selftest") == 0) {
        rc = cmd_selftest();
    } else if (strcmp(argv[1], "threads") == 0 && argc == 4) {
        rc = cmd_threads(strtoul(argv[2], NULL, 10), atoi(argv[3]));
    } else {
        usage();
        rc = 2;
    }
    fflush(stdout);
    if (Py_FinalizeEx() < 0 && rc == 0) {
        rc = 120;
    }
    return rc;
}
