/* A tiny "JIT": counts calls per code object with the PEP 9999 API.
 *
 * enable() requests an extra index, installs a constructor hook that gives
 * every new code object a counter up front (CompareExchange from NULL, so
 * a racing thread cannot replace a counter another thread already uses),
 * and installs a frame evaluator (PEP 523) that bumps the counter of the
 * code being run, creating it lazily with the same CompareExchange for
 * code objects built before enable() (those are served out of line).
 * count(code) reads a counter back; disable() removes the evaluator and
 * the hook and releases the index, which frees every counter.
 *
 * Built from source against the patched headers by callcount.py.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>

#ifndef Py_HAVE_PEP9999
#error "callcount needs an interpreter with the PEP 9999 API"
#endif

typedef struct {
    Py_ssize_t calls; /* atomic on free-threaded builds */
} counter;

static Py_ssize_t index_ = -1;
static int hook_id = -1;
static Py_ssize_t created, freed;
static _PyFrameEvalFunction previous_eval;

static void
counter_free(void *ptr)
{
    freed++;
    free(ptr);
}

/* The counter of `code`, created if missing; NULL with an exception. */
static counter *
counter_of(PyObject *code)
{
    void *current = NULL;
    if (PyUnstable_Code_GetExtra(code, index_, &current) < 0) {
        return NULL;
    }
    if (current != NULL) {
        return current;
    }
    counter *fresh = calloc(1, sizeof(counter));
    if (fresh == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    void *expected = NULL;
    int rc =
        PyUnstable_Code_CompareExchangeExtra(code, index_, &expected, fresh);
    if (rc < 0) {
        free(fresh);
        return NULL;
    }
    if (rc == 0) {
        /* Another thread won: use its counter, never ours. */
        free(fresh);
        return expected;
    }
    created++;
    return fresh;
}

static int
on_new_code(PyObject *code, void *Py_UNUSED(arg))
{
    return counter_of(code) == NULL ? -1 : 0;
}

static PyObject *
counting_eval(PyThreadState *tstate, struct _PyInterpreterFrame *frame,
              int throwflag)
{
    PyObject *code = PyUnstable_InterpreterFrame_GetCode(frame);
    counter *c = counter_of(code);
    Py_DECREF(code);
    if (c == NULL) {
        return NULL;
    }
#ifdef Py_GIL_DISABLED
    __atomic_fetch_add(&c->calls, 1, __ATOMIC_RELAXED);
#else
    c->calls++;
#endif
    return _PyEval_EvalFrameDefault(tstate, frame, throwflag);
}

static PyObject *
enable(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(args))
{
    if (index_ >= 0) {
        PyErr_SetString(PyExc_RuntimeError, "already enabled");
        return NULL;
    }
    index_ = PyUnstable_Eval_RequestCodeExtraIndex(counter_free);
    if (index_ < 0) {
        return NULL;
    }
    hook_id = PyUnstable_Code_AddConstructorHook(on_new_code, NULL);
    if (hook_id < 0) {
        return NULL;
    }
    PyInterpreterState *interp = PyInterpreterState_Get();
    previous_eval = _PyInterpreterState_GetEvalFrameFunc(interp);
    _PyInterpreterState_SetEvalFrameFunc(interp, counting_eval);
    return PyLong_FromSsize_t(index_);
}

static PyObject *
count(PyObject *Py_UNUSED(module), PyObject *code)
{
    void *value = NULL;
    if (PyUnstable_Code_GetExtra(code, index_, &value) < 0) {
        return NULL;
    }
    if (value == NULL) {
        Py_RETURN_NONE;
    }
    return PyLong_FromSsize_t(((counter *)value)->calls);
}

static PyObject *
has_inline(PyObject *Py_UNUSED(module), PyObject *code)
{
    int rc = PyUnstable_Code_HasInlineExtra(code);
    return rc < 0 ? NULL : PyBool_FromLong(rc);
}

static PyObject *
disable(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(args))
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    _PyInterpreterState_SetEvalFrameFunc(interp, previous_eval);
    if (PyUnstable_Code_RemoveConstructorHook(hook_id) < 0) {
        return NULL;
    }
    if (PyUnstable_Eval_ReleaseCodeExtraIndex(index_) < 0) {
        return NULL;
    }
    index_ = -1;
    return Py_BuildValue("(nn)", created, freed);
}

static PyMethodDef methods[] = {
    {"enable", enable, METH_NOARGS, "start counting; returns the index"},
    {"count", count, METH_O, "calls of a code object, or None"},
    {"has_inline", has_inline, METH_O, "PyUnstable_Code_HasInlineExtra"},
    {"disable", disable, METH_NOARGS, "stop; returns (created, freed)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "callcount",
    "Counts calls per code object in the code extra storage.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit_callcount(void)
{
    PyObject *m = PyModule_Create(&module);
#ifdef Py_GIL_DISABLED
    if (m != NULL) {
        PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
    }
#endif
    return m;
}
