/*
 * cases_cpython.c -- the stock API of an embedded CPython.
 *
 * The harness embeds the interpreter it was built against, so these
 * loops call the exported functions through the PLT exactly as an
 * extension module does, with the GIL held (the main thread holds it
 * after Py_Initialize).  3.12 renamed the functions PyUnstable_*; the
 * old names survive only as static inline wrappers.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "bench.h"

#if PY_VERSION_HEX >= 0x030C0000
#define STOCK_REQUEST PyUnstable_Eval_RequestCodeExtraIndex
#define STOCK_GET PyUnstable_Code_GetExtra
#define STOCK_SET PyUnstable_Code_SetExtra
#else
#define STOCK_REQUEST _PyEval_RequestCodeExtraIndex
#define STOCK_GET _PyCode_GetExtra
#define STOCK_SET _PyCode_SetExtra
#endif

static PyObject *codes[OBJ_COUNT];
static Py_ssize_t plain_index = -1;
static Py_ssize_t free_index = -1;
static volatile long frees;

static void
count_free(void *value)
{
    (void)value;
    frees++;
}

int
cpython_setup(void)
{
    /* Two indices: one without a free function (plain get/set) and one
       whose free function runs on every overwrite. */
    plain_index = STOCK_REQUEST(NULL);
    free_index = STOCK_REQUEST(count_free);
    if (plain_index < 0 || free_index < 0) {
        PyErr_Print();
        return -1;
    }
    for (int i = 0; i < OBJ_COUNT; i++) {
        codes[i] = (PyObject *)PyCode_NewEmpty("bench.py", "f", i + 1);
        if (codes[i] == NULL) {
            PyErr_Print();
            return -1;
        }
        if (STOCK_SET(codes[i], plain_index, (void *)(uintptr_t)(i + 1)) < 0 ||
            STOCK_SET(codes[i], free_index, (void *)(uintptr_t)(i + 1)) < 0) {
            PyErr_Print();
            return -1;
        }
    }
    return 0;
}

void
cpython_teardown(void)
{
    for (int i = 0; i < OBJ_COUNT; i++) {
        Py_CLEAR(codes[i]);
    }
}

static uintptr_t __attribute__((noinline))
case_cpython_get(size_t n)
{
    uintptr_t acc = 0;
    Py_ssize_t index = plain_index;
    LAUNDER(index);
    for (size_t i = 0; i < n; i++) {
        PyObject *co = codes[i & OBJ_MASK];
        void *value;
        LAUNDER(co);
        /* The return value is checked as a consumer must. */
        if (STOCK_GET(co, index, &value) < 0) {
            return 0;
        }
        acc += (uintptr_t)value;
    }
    return acc;
}

/* Every store changes the slot (the value is the iteration number + 1,
   never the one already there).  Always inlined into each case with a
   constant index variable, so each case compiles to its own loop. */
static inline __attribute__((always_inline)) uintptr_t
set_loop(size_t n, Py_ssize_t index)
{
    uintptr_t acc = 0;
    LAUNDER(index);
    for (size_t i = 0; i < n; i++) {
        PyObject *co = codes[i & OBJ_MASK];
        LAUNDER(co);
        acc += (uintptr_t)STOCK_SET(co, index, (void *)(uintptr_t)(i + 1));
    }
    return acc;
}

/* The index has no free function. */
static uintptr_t __attribute__((noinline))
case_cpython_set(size_t n)
{
    return set_loop(n, plain_index);
}

/* Every store overwrites a non-NULL value, so the free function runs
   once per operation. */
static uintptr_t __attribute__((noinline))
case_cpython_set_free(size_t n)
{
    return set_loop(n, free_index);
}

/* Latency variant (see bench.h): object i holds i + 1, the next one. */
static uintptr_t __attribute__((noinline))
case_cpython_get_chain(size_t n)
{
    size_t k = 0;
    Py_ssize_t index = plain_index;
    LAUNDER(index);
    for (size_t i = 0; i < n; i++) {
        PyObject *co = codes[k];
        void *value;
        LAUNDER(co);
        if (STOCK_GET(co, index, &value) < 0) {
            return 0;
        }
        k = (uintptr_t)value & OBJ_MASK;
    }
    return k;
}

const bench_case cpython_cases[] = {
    {"cpython_get", case_cpython_get},
    {"cpython_get_chain", case_cpython_get_chain},
    {"cpython_set", case_cpython_set},
    {"cpython_set_free", case_cpython_set_free},
};
const size_t cpython_case_count =
    sizeof(cpython_cases) / sizeof(cpython_cases[0]);

#if PY_VERSION_HEX >= 0x030C0000
static volatile long watch_events;

/* The cheapest possible consumer: it only counts, so the figure is the
   cost of the mechanism itself. */
static int
count_watch(PyCodeEvent event, PyCodeObject *co)
{
    (void)event;
    (void)co;
    watch_events++;
    return 0;
}
#endif

int
cpython_watch_ns(size_t n, int watchers, double *ns_per_code)
{
#if PY_VERSION_HEX >= 0x030C0000
    int ids[8];
    for (int w = 0; w < watchers; w++) {
        ids[w] = PyCode_AddWatcher(count_watch);
        if (ids[w] < 0) {
            PyErr_Print();
            return -1;
        }
    }
    double start = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        PyCodeObject *co = PyCode_NewEmpty("bench.py", "f", 1);
        if (co == NULL) {
            PyErr_Print();
            return -1;
        }
        Py_DECREF(co);
    }
    *ns_per_code = (bench_now_ns() - start) / (double)n;
    for (int w = 0; w < watchers; w++) {
        if (PyCode_ClearWatcher(ids[w]) < 0) {
            PyErr_Print();
            return -1;
        }
    }
    return 0;
#else
    (void)n;
    (void)watchers;
    (void)ns_per_code;
    return -1;
#endif
}

static long
count_codes(PyObject *co)
{
    long count = 1;
    PyObject *consts = PyObject_GetAttrString(co, "co_consts");
    if (consts == NULL) {
        PyErr_Clear();
        return count;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(consts); i++) {
        PyObject *item = PyTuple_GET_ITEM(consts, i);
        if (PyCode_Check(item)) {
            count += count_codes(item);
        }
    }
    Py_DECREF(consts);
    return count;
}

int
cpython_compile(char **sources, char **paths, int count, int watcher,
                double *ns, long *codes_out, long *failed)
{
#if PY_VERSION_HEX >= 0x030C0000
    int id = -1;
    if (watcher) {
        id = PyCode_AddWatcher(count_watch);
        if (id < 0) {
            PyErr_Print();
            return -1;
        }
    }
#else
    if (watcher) {
        return -1;
    }
#endif
    long total_codes = 0;
    long total_failed = 0;
    double spent = 0.0;
    for (int f = 0; f < count; f++) {
        /* Timed: compile() plus the release of the result, since both
           create and destroy events reach a hook or watcher. */
        double start = bench_now_ns();
        PyObject *co = Py_CompileStringExFlags(sources[f], paths[f],
                                               Py_file_input, NULL, -1);
        if (co != NULL && codes_out != NULL) {
            double pause = bench_now_ns();
            total_codes += count_codes(co);
            start += bench_now_ns() - pause;
        }
        Py_XDECREF(co);
        spent += bench_now_ns() - start;
        if (co == NULL) {
            /* A file this version cannot compile (the sample comes from
               the host's stdlib): counted, and the same in every run. */
            PyErr_Clear();
            total_failed++;
        }
    }
#if PY_VERSION_HEX >= 0x030C0000
    if (id >= 0 && PyCode_ClearWatcher(id) < 0) {
        PyErr_Print();
        return -1;
    }
#endif
    *ns = spent;
    if (codes_out != NULL) {
        *codes_out = total_codes;
    }
    if (failed != NULL) {
        *failed = total_failed;
    }
    return 0;
}
