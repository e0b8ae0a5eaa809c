/*
 * startup_consumer.c -- a consumer of the extra storage that is active
 * from start-up, for the pyperformance comparison.
 *
 * Imported by sitecustomize.py (consumer_sitecustomize.py, copied beside
 * the compiled module), it requests one extra index and stores a value
 * into every code object built from then on:
 *
 *   - on a PEP 9999 build, from a constructor hook (the slot is inline,
 *     sized when the code object is built);
 *   - on an unpatched build, from a code watcher's CREATE event, the
 *     nearest stock mechanism (the first SetExtra allocates the block).
 *
 * The value is a marker and the free function only counts: the
 * comparison is about the storage mechanism, not about what a consumer
 * keeps in it.  counts() returns (stored, freed) so a run can check that
 * the consumer was really active.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static Py_ssize_t consumer_index = -1;
static Py_ssize_t stored, freed;

static void
count_free(void *value)
{
    (void)value;
    freed++;
}

static int
store(PyObject *code)
{
    if (PyUnstable_Code_SetExtra(code, consumer_index, (void *)1) < 0) {
        return -1;
    }
    stored++;
    return 0;
}

#ifdef Py_HAVE_PEP9999
static int
on_construct(PyObject *code, void *arg)
{
    (void)arg;
    return store(code);
}
#else
static int
on_code_event(PyCodeEvent event, PyCodeObject *code)
{
    return event == PY_CODE_EVENT_CREATE ? store((PyObject *)code) : 0;
}
#endif

static PyObject *
consumer_counts(PyObject *self, PyObject *noargs)
{
    (void)self;
    (void)noargs;
    return Py_BuildValue("(nn)", stored, freed);
}

static PyObject *
consumer_index_of(PyObject *self, PyObject *noargs)
{
    (void)self;
    (void)noargs;
    return PyLong_FromSsize_t(consumer_index);
}

static PyMethodDef consumer_methods[] = {
    {"counts", consumer_counts, METH_NOARGS,
     "(values stored, values freed) so far."},
    {"index", consumer_index_of, METH_NOARGS, "The consumer's extra index."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef consumer_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "_coextra_bench_consumer",
    .m_doc = "An extra-storage consumer active from start-up.",
    .m_size = -1,
    .m_methods = consumer_methods,
};

PyMODINIT_FUNC
PyInit__coextra_bench_consumer(void)
{
    PyObject *m = PyModule_Create(&consumer_module);
    if (m == NULL) {
        return NULL;
    }
#ifdef Py_GIL_DISABLED
    /* Importing a module that does not declare this re-enables the GIL
       of a free-threaded build, which would distort every figure. */
    PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED);
#endif
    if (consumer_index < 0) {
        consumer_index = PyUnstable_Eval_RequestCodeExtraIndex(count_free);
        if (consumer_index < 0) {
            Py_DECREF(m);
            return NULL;
        }
#ifdef Py_HAVE_PEP9999
        int id = PyUnstable_Code_AddConstructorHook(on_construct, NULL);
#else
        int id = PyCode_AddWatcher(on_code_event);
#endif
        if (id < 0) {
            Py_DECREF(m);
            return NULL;
        }
    }
    return m;
}
