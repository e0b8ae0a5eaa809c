/*
 * call_counter.c -- the consumer of PEP 9999's "How to Teach This".
 *
 * Counts the calls of each code object.  The index lives in the module
 * state, so that every interpreter that imports the module has its own
 * (indices are per interpreter), and a counter is created on first use
 * with PyUnstable_Code_CompareExchangeExtra, so that two threads of a
 * free-threaded build that both find the slot empty cannot both store.
 *
 * The PEP shows the part between the BEGIN and END markers.  The module
 * definition that makes it importable is call_counter_module.c; the
 * project's tests compile this file against the reference implementation
 * (meta_tests/test_pep_example.py) and, when they are built, against the
 * patched CPython 3.13.15 builds.
 */
#include <Python.h>
#include <stdatomic.h>
#include <stdint.h>

/* BEGIN: consumer */
typedef struct {
    int has_index;          /* the state starts zeroed: no index yet */
    Py_ssize_t calls_index; /* this interpreter's index */
} counter_state;

static void
free_counter(void *counter)
{
    PyMem_RawFree(counter);
}

/* Exec slot: runs once per interpreter that imports the module. */
static int
counter_exec(PyObject *module)
{
    counter_state *state = PyModule_GetState(module);
    state->calls_index = PyUnstable_Eval_RequestCodeExtraIndex(free_counter);
    if (state->calls_index < 0) {
        return -1;
    }
    state->has_index = 1;
    return 0;
}

/* m_free: give the index back; every counter is freed with it.  It runs
   when the module dies, so nothing can call count_call() any more. */
static void
counter_free(void *module)
{
    counter_state *state = PyModule_GetState((PyObject *)module);
    if (state != NULL && state->has_index) {
        state->has_index = 0;
        if (PyUnstable_Eval_ReleaseCodeExtraIndex(state->calls_index) < 0) {
            PyErr_WriteUnraisable(NULL);
        }
    }
}

/* Count one call of `code`; safe from any thread. */
static int
count_call(counter_state *state, PyObject *code)
{
    void *counter;
    if (PyUnstable_Code_GetExtra(code, state->calls_index, &counter) < 0) {
        return -1;
    }
    if (counter == NULL) {
        void *fresh = PyMem_RawCalloc(1, sizeof(_Atomic uint64_t));
        if (fresh == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        /* Store it only if the slot is still empty; else use the
           counter another thread stored first. */
        int stored = PyUnstable_Code_CompareExchangeExtra(
            code, state->calls_index, &counter, fresh);
        if (stored <= 0) {
            PyMem_RawFree(fresh); /* still ours: not stored */
            if (stored < 0) {
                return -1;
            }
        } else {
            counter = fresh;
        }
    }
    /* Counters are never replaced, so `counter` stays valid while the
       caller holds `code` and the index is not released. */
    atomic_fetch_add_explicit((_Atomic uint64_t *)counter, 1,
                              memory_order_relaxed);
    return 0;
}
/* END: consumer */

/* Read the count of `code` (0 if it was never counted), or -1. */
static int64_t
read_count(counter_state *state, PyObject *code)
{
    void *counter;
    if (PyUnstable_Code_GetExtra(code, state->calls_index, &counter) < 0) {
        return -1;
    }
    if (counter == NULL) {
        return 0;
    }
    return (int64_t)atomic_load_explicit((_Atomic uint64_t *)counter,
                                         memory_order_relaxed);
}
