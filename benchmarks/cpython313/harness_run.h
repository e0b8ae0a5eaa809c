/*
 * harness_run.h -- the `_lfl` module and the run command, which let a
 * Python script measure bytes per code object and the stdlib census
 * inside this build.
 *
 * Part of the like-for-like harness: harness.c includes it (one
 * translation unit, so that every case and helper stays static).
 */
#ifndef HARNESS_RUN_H
#define HARNESS_RUN_H

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

#endif /* HARNESS_RUN_H */
