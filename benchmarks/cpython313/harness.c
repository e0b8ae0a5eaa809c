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
 *
 * This file holds the set-up, the time and count commands, the selftest
 * and the command line; the loops are in harness_cases.h, the threads
 * command in harness_threads.h, the `_lfl` module and the run command in
 * harness_run.h, and the watchers-table consumer in code_table.h.
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
#include "harness_cases.h"

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
#include "harness_threads.h"

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
#include "harness_run.h"

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
