/*
 * harness_cases.h -- the measured loops, one case per design and operation,
 * and the table of cases the time and count commands run.
 *
 * Part of the like-for-like harness: harness.c includes it (one
 * translation unit, so that every case and helper stays static).
 */
#ifndef HARNESS_CASES_H
#define HARNESS_CASES_H

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

#endif /* HARNESS_CASES_H */
