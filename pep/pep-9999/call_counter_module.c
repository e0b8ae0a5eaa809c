/*
 * call_counter_module.c -- call_counter.c as an extension module.
 *
 *     counter.count(code)   count one call of a code object
 *     counter.calls(code)   the number counted so far
 *
 * Multi-phase initialisation: one module state, so one index, per
 * interpreter; it supports interpreters with their own GIL and does not
 * need the GIL.  Built against a CPython that implements PEP 9999 (the
 * patched 3.13.15 builds) by meta_tests/test_pep_example.py.
 */
#include "call_counter.c"

static PyObject *
counter_count(PyObject *module, PyObject *code)
{
    if (!PyCode_Check(code)) {
        PyErr_SetString(PyExc_TypeError, "count() needs a code object");
        return NULL;
    }
    if (count_call(PyModule_GetState(module), code) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
counter_calls(PyObject *module, PyObject *code)
{
    if (!PyCode_Check(code)) {
        PyErr_SetString(PyExc_TypeError, "calls() needs a code object");
        return NULL;
    }
    int64_t count = read_count(PyModule_GetState(module), code);
    return count < 0 ? NULL : PyLong_FromLongLong(count);
}

static PyMethodDef counter_methods[] = {
    {"count", counter_count, METH_O, "Count one call of a code object."},
    {"calls", counter_calls, METH_O, "Calls counted for a code object."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot counter_slots[] = {
    {Py_mod_exec, counter_exec},
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef counter_module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "call_counter",
    .m_doc = "Counts calls per code object (PEP 9999, How to Teach This).",
    .m_size = sizeof(counter_state),
    .m_methods = counter_methods,
    .m_slots = counter_slots,
    .m_free = counter_free,
};

PyMODINIT_FUNC
PyInit_call_counter(void)
{
    return PyModuleDef_Init(&counter_module);
}
