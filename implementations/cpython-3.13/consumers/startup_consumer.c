/* A consumer active from start-up, for running CPython's own tests with
 * the extra storage in use (imported by the sitecustomize.py beside it).
 *
 * It requests one extra index, and stores a freshly allocated value into
 * every code object built from then on; its free function releases the
 * value.  On a PEP 9999 build it does so from a constructor hook; on an
 * unpatched 3.12+ build from a code watcher's CREATE event (the nearest
 * stock mechanism), so both builds run the same workload.
 *
 * counts() returns (stored, freed, failures) so a run can check that the
 * consumer really was active.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>

static Py_ssize_t consumer_index = -1;
static Py_ssize_t stored, freed, failures;

static void
consumer_free(void *value)
{
    freed++;
    free(value);
}

static int
store_value(PyObject *code)
{
    void *value = malloc(16);
    if (value == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (PyUnstable_Code_SetExtra(code, consumer_index, value) < 0) {
        free(value);
        failures++;
        return -1;
    }
    stored++;
    return 0;
}

#ifdef Py_HAVE_PEP9999
static int
consumer_hook(PyObject *code, void *Py_UNUSED(arg))
{
    return store_value(code);
}
#else
static int
consumer_watcher(PyCodeEvent event, PyCodeObject *code)
{
    if (event != PY_CODE_EVENT_CREATE) {
        return 0;
    }
    return store_value((PyObject *)code);
}
#endif

static PyObject *
start(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(args))
{
    if (consumer_index >= 0) {
        Py_RETURN_NONE;
    }
    consumer_index = PyUnstable_Eval_RequestCodeExtraIndex(consumer_free);
    if (consumer_index < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "no extra index left");
        }
        return NULL;
    }
#ifdef Py_HAVE_PEP9999
    if (PyUnstable_Code_AddConstructorHook(consumer_hook, NULL) < 0) {
        return NULL;
    }
#else
    if (PyCode_AddWatcher(consumer_watcher) < 0) {
        return NULL;
    }
#endif
    Py_RETURN_NONE;
}

static PyObject *
counts(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(args))
{
    return Py_BuildValue("(nnn)", stored, freed, failures);
}

static PyMethodDef methods[] = {
    {"start", start, METH_NOARGS, "start storing into every new code object"},
    {"counts", counts, METH_NOARGS, "(stored, freed, failures)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "_startup_consumer",
    "Stores a value into every new code object.",
    -1,
    methods,
    NULL,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__startup_consumer(void)
{
    PyObject *m = PyModule_Create(&module);
#ifdef Py_GIL_DISABLED
    if (m != NULL) {
        PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
    }
#endif
    return m;
}
