/*
 * _coextra_cpython.c -- the target-interpreter half of the stock CPython
 * adapter of the PEP 9999 conformance suite.
 *
 * worker.py compiles this file against the interpreter under test
 * (CPython 3.6 ... 3.15, or a build carrying the PEP 9999 API) and calls
 * the real co_extra API through it.  Everything the suite observes from
 * inside the interpreter is recorded here in C:
 *
 *  - 16 distinct free functions (the API never tells a free function its
 *    index, so the tag that identifies a FreeFunc must be a separate C
 *    function); each records (tag, value) and then performs its action;
 *  - constructor hooks: code watchers on 3.12+, the PEP's hook chain on a
 *    build that has it; each records (tag, address of the code object);
 *  - any exception an API call leaves set, as the name of its class.
 *
 * Every wrapper returns the raw return code of the API call together with
 * the class name of the exception it set (or None) and clears that
 * exception, so the Python side never sees an exception from a wrapper
 * except for misuse of the wrapper itself.
 *
 * This file holds those wrappers and the module; the machinery behind
 * them lives in the cx_*.h parts included below.
 */

/* One translation unit, in dependency order; each part says what it
   holds. */
#include "cx_common.h"
#include "cx_alloc.h"
#include "cx_interp.h"
#include "cx_record.h"
#include "cx_hammer.h"

/* -- wrappers exposed to worker.py ------------------------------------- */

/* The end of a wrapper, in the interpreter that made the call: capture
   what the call left (cx_capture), make the caller's interpreter current
   again and build (rc, error-or-None). */
static PyObject *
cx_answer(long long rc, PyThreadState *prev)
{
    char name[64];

    cx_capture(rc, name, sizeof(name));
    cx_leave(prev);
    return cx_result(rc, name);
}

static PyObject *
cx_configure_free(PyObject *Py_UNUSED(self), PyObject *args)
{
    int tag, action;
    PyObject *target, *value;
    Py_ssize_t index;
    uintptr_t word;
    cx_free_conf *conf;

    if (!PyArg_ParseTuple(args, "iiOnO", &tag, &action, &target, &index,
                          &value)) {
        return NULL;
    }
    if (tag < 0 || tag >= CX_FREE_TAGS) {
        PyErr_SetString(PyExc_ValueError, "free function tag out of range");
        return NULL;
    }
    if (cx_word(value, &word) < 0) {
        return NULL;
    }
    conf = &cx_free_confs[tag];
    Py_CLEAR(conf->target);
    if (target != Py_None) {
        conf->target = PyWeakref_NewRef(target, NULL);
        if (conf->target == NULL) {
            return NULL;
        }
    }
    conf->action = action;
    conf->index = index;
    conf->value = word;
    Py_RETURN_NONE;
}

static PyObject *
cx_request_index(PyObject *Py_UNUSED(self), PyObject *args)
{
    int interp, tag;
    freefunc free = NULL;
    Py_ssize_t rc;
    PyThreadState *prev;

    if (!PyArg_ParseTuple(args, "ii", &interp, &tag)) {
        return NULL;
    }
    if (tag >= CX_FREE_TAGS) {
        PyErr_SetString(PyExc_ValueError, "free function tag out of range");
        return NULL;
    }
    if (tag >= 0) {
        free = cx_free_funcs[tag];
    }
    if (cx_enter(interp, &prev) < 0) {
        return NULL;
    }
    CX_ARM();
    rc = CX_REQUEST(free);
    CX_DISARM();
    return cx_answer(rc, prev);
}

static PyObject *
cx_get_extra(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *code, *prime, *result, *pair;
    Py_ssize_t index;
    uintptr_t word;
    void *extra;
    int interp, rc;
    PyThreadState *prev;

    if (!PyArg_ParseTuple(args, "iOnO", &interp, &code, &index, &prime)) {
        return NULL;
    }
    if (cx_word(prime, &word) < 0 || cx_enter(interp, &prev) < 0) {
        return NULL;
    }
    extra = (void *)word;
    CX_ARM();
    rc = CX_GET(code, index, &extra);
    CX_DISARM();
    pair = cx_answer(rc, prev);
    if (pair == NULL) {
        return NULL;
    }
    result = Py_BuildValue("(OK)", pair, (unsigned long long)(uintptr_t)extra);
    Py_DECREF(pair);
    return result;
}

static PyObject *
cx_set_extra(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *code, *value;
    Py_ssize_t index;
    uintptr_t word;
    int interp, rc;
    PyThreadState *prev;

    if (!PyArg_ParseTuple(args, "iOnO", &interp, &code, &index, &value)) {
        return NULL;
    }
    if (cx_word(value, &word) < 0 || cx_enter(interp, &prev) < 0) {
        return NULL;
    }
    CX_ARM();
    rc = CX_SET(code, index, (void *)word);
    CX_DISARM();
    return cx_answer(rc, prev);
}

/* The code object's co_flags as C code sees them.  A PEP 9999 build may
   keep CO_INLINE_EXTRA out of the Python-level attribute (the patched
   3.13 does), and the suite's flag requirements are about this field. */
static PyObject *
cx_c_co_flags(PyObject *Py_UNUSED(self), PyObject *code)
{
    if (!PyCode_Check(code)) {
        PyErr_SetString(PyExc_TypeError, "c_co_flags() needs a code object");
        return NULL;
    }
    return PyLong_FromLong((long)((PyCodeObject *)code)->co_flags);
}

#if CX_PEP9999 && defined(Py_HAVE_PEP9999)
/* PEP 9999 builds that implement CompareExchange (the patched 3.13). */
static PyObject *
cx_compare_exchange_extra(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *code, *expected_obj, *desired_obj, *pair, *result;
    Py_ssize_t index;
    uintptr_t expected_word, desired_word;
    void *expected;
    int interp, rc;
    PyThreadState *prev;

    if (!PyArg_ParseTuple(args, "iOnOO", &interp, &code, &index, &expected_obj,
                          &desired_obj)) {
        return NULL;
    }
    if (cx_word(expected_obj, &expected_word) < 0 ||
        cx_word(desired_obj, &desired_word) < 0 ||
        cx_enter(interp, &prev) < 0) {
        return NULL;
    }
    expected = (void *)expected_word;
    CX_ARM();
    rc = PyUnstable_Code_CompareExchangeExtra(code, index, &expected,
                                              (void *)desired_word);
    CX_DISARM();
    pair = cx_answer(rc, prev);
    if (pair == NULL) {
        return NULL;
    }
    result =
        Py_BuildValue("(OK)", pair, (unsigned long long)(uintptr_t)expected);
    Py_DECREF(pair);
    return result;
}
#endif

#if CX_WATCHERS || CX_PEP9999
/* Register a hook in a free slot; returns the API's result (id or -1).
   Also used by the ADD_HOOK action from inside a running hook. */
static int
cx_hook_add(int tag, int action, Py_ssize_t index, uintptr_t value)
{
    cx_hook_slot *slot = NULL;
    int i, rc;

    for (i = 0; i < CX_HOOK_SLOTS && slot == NULL; i++) {
        if (!cx_hooks[i].used) {
            slot = &cx_hooks[i];
        }
    }
    if (slot == NULL) {
        /* Not an API result: the adapter itself ran out of callbacks. */
        PyErr_SetString(PyExc_OverflowError, "adapter has no free hook slot");
        return -2;
    }
    slot->tag = tag;
    slot->action = action;
    slot->index = index;
    slot->value = value;
    slot->running = 0;
    slot->interp = PyThreadState_Get()->interp;
    /* Mark the slot before registering: a PEP hook may be called for a
       construction that happens during registration. */
    slot->used = 1;
#if CX_WATCHERS
    rc = PyCode_AddWatcher(cx_watch_funcs[slot - cx_hooks]);
#else
    rc = PyUnstable_Code_AddConstructorHook(cx_pep_hook, slot);
#endif
    if (rc < 0) {
        slot->used = 0;
    }
    slot->id = rc;
    return rc;
}

static int
cx_hook_remove(int id)
{
    PyInterpreterState *interp = PyThreadState_Get()->interp;
    int i, rc;

#if CX_WATCHERS
    rc = PyCode_ClearWatcher(id);
#else
    rc = PyUnstable_Code_RemoveConstructorHook(id);
#endif
    if (rc == 0) {
        for (i = 0; i < CX_HOOK_SLOTS; i++) {
            if (cx_hooks[i].used && cx_hooks[i].interp == interp &&
                cx_hooks[i].id == id) {
                cx_hooks[i].used = 0;
            }
        }
    }
    return rc;
}

static PyObject *
cx_add_hook(PyObject *Py_UNUSED(self), PyObject *args)
{
    int interp, tag, action, rc;
    Py_ssize_t index;
    PyObject *value;
    uintptr_t word;
    PyThreadState *prev;
    char name[64];

    if (!PyArg_ParseTuple(args, "iiinO", &interp, &tag, &action, &index,
                          &value)) {
        return NULL;
    }
    if (cx_word(value, &word) < 0 || cx_enter(interp, &prev) < 0) {
        return NULL;
    }
    CX_ARM();
    rc = cx_hook_add(tag, action, index, word);
    CX_DISARM();
    if (rc == -2) {
        /* The adapter's own limit: carry the OverflowError over. */
        PyObject *type, *exc, *tb;

        PyErr_Fetch(&type, &exc, &tb);
        cx_leave(prev);
        PyErr_Restore(type, exc, tb);
        return NULL;
    }
    cx_capture(rc, name, sizeof(name));
    cx_leave(prev);
    return cx_result(rc, name);
}

static PyObject *
cx_remove_hook(PyObject *Py_UNUSED(self), PyObject *args)
{
    int interp, id, rc;
    PyThreadState *prev;

    if (!PyArg_ParseTuple(args, "ii", &interp, &id) ||
        cx_enter(interp, &prev) < 0) {
        return NULL;
    }
    CX_ARM();
    rc = cx_hook_remove(id);
    CX_DISARM();
    return cx_answer(rc, prev);
}
#endif

#if CX_PEP9999
static PyObject *
cx_release_index(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_ssize_t index;
    int interp, rc;
    PyThreadState *prev;

    if (!PyArg_ParseTuple(args, "in", &interp, &index) ||
        cx_enter(interp, &prev) < 0) {
        return NULL;
    }
    CX_ARM();
    rc = PyUnstable_Eval_ReleaseCodeExtraIndex(index);
    CX_DISARM();
    return cx_answer(rc, prev);
}

static PyObject *
cx_has_inline_extra(PyObject *Py_UNUSED(self), PyObject *code)
{
    char name[64];
    int rc = PyUnstable_Code_HasInlineExtra(code);

    cx_capture(rc, name, sizeof(name));
    return cx_result(rc, name);
}
#endif

/* Bytes a code object spends on extra storage. */
static PyObject *
cx_extra_bytes(PyObject *Py_UNUSED(self), PyObject *code)
{
#if CX_PEP9999
    /* The layout of a patched object is the patch's business; rely on its
       __sizeof__ counting the storage (R-FLAG-9) and subtract the plain
       object size, which excludes any trailing storage. */
    PyObject *size = PyObject_CallMethod(code, "__sizeof__", NULL);
    Py_ssize_t total;

    if (size == NULL) {
        return NULL;
    }
    total = PyLong_AsSsize_t(size);
    Py_DECREF(size);
    if (total == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromSsize_t(
        total - (Py_ssize_t)_PyObject_VAR_SIZE(Py_TYPE(code), Py_SIZE(code)));
#else
    /* Stock layout: every code object has the co_extra pointer; Set
       allocates a block headed by ce_size (slot count) the first time a
       slot is stored, and grows it with the number of indices. */
    Py_ssize_t bytes = (Py_ssize_t)sizeof(void *);
    void *block;

    if (!PyCode_Check(code)) {
        PyErr_SetString(PyExc_TypeError, "extra_bytes needs a code object");
        return NULL;
    }
    block = ((PyCodeObject *)code)->co_extra;
    if (block != NULL) {
        Py_ssize_t slots = *(Py_ssize_t *)block;
#if PY_VERSION_HEX < 0x03070000
        /* 3.6: a {ce_size, ce_extras} header plus a separate array. */
        bytes += (Py_ssize_t)(sizeof(Py_ssize_t) + sizeof(void **)) +
                 slots * (Py_ssize_t)sizeof(void *);
#else
        /* 3.7+: one block, ce_size followed by the slots. */
        bytes += (Py_ssize_t)sizeof(Py_ssize_t) +
                 slots * (Py_ssize_t)sizeof(void *);
#endif
    }
    return PyLong_FromSsize_t(bytes);
#endif
}

static PyObject *
cx_code_address(PyObject *Py_UNUSED(self), PyObject *obj)
{
    return PyLong_FromUnsignedLongLong((unsigned long long)(uintptr_t)obj);
}

static PyMethodDef cx_methods[] = {
    {"configure_free", cx_configure_free, METH_VARARGS,
     "configure_free(tag, action, target, index, value)"},
    {"request_index", cx_request_index, METH_VARARGS,
     "request_index(interp, tag) -> (rc, error); tag -1: NULL"},
    {"get_extra", cx_get_extra, METH_VARARGS,
     "get_extra(interp, obj, index, prime) -> ((rc, error), extra)"},
    {"set_extra", cx_set_extra, METH_VARARGS,
     "set_extra(interp, obj, index, value) -> (rc, error)"},
#if CX_WATCHERS || CX_PEP9999
    {"add_hook", cx_add_hook, METH_VARARGS,
     "add_hook(interp, tag, action, index, value) -> (rc, error)"},
    {"remove_hook", cx_remove_hook, METH_VARARGS,
     "remove_hook(interp, id) -> (rc, error)"},
#endif
#if CX_PEP9999
    {"release_index", cx_release_index, METH_VARARGS,
     "release_index(interp, index) -> (rc, error)"},
    {"has_inline_extra", cx_has_inline_extra, METH_O,
     "has_inline_extra(obj) -> (rc, error)"},
#endif
#if CX_PEP9999 && defined(Py_HAVE_PEP9999)
    {"compare_exchange_extra", cx_compare_exchange_extra, METH_VARARGS,
     "compare_exchange_extra(interp, obj, index, expected, desired) -> "
     "((rc, error), value left in *expected)"},
#endif
    {"c_co_flags", cx_c_co_flags, METH_O,
     "c_co_flags(code) -> the co_flags field as C code reads it"},
    {"extra_bytes", cx_extra_bytes, METH_O,
     "extra_bytes(code) -> bytes spent on extra storage"},
    {"take_free_calls", cx_take_free_calls, METH_NOARGS,
     "take_free_calls() -> ([(tag, value, result, error)], lost)"},
#if CX_WATCHERS || CX_PEP9999
    {"take_hook_calls", cx_take_hook_calls, METH_NOARGS,
     "take_hook_calls() -> ([(tag, code address)], lost)"},
#endif
    {"take_pending", cx_take_pending, METH_NOARGS,
     "take_pending() -> exception class name left set, or None"},
    {"fail_allocations", cx_fail_allocations, METH_VARARGS,
     "fail_allocations(after, count): arm failures for API calls"},
    {"new_interpreter", cx_new_interpreter, METH_VARARGS,
     "new_interpreter([own_gil]) -> number of a new sub-interpreter"},
    {"end_interpreter", cx_end_interpreter, METH_VARARGS,
     "end_interpreter(n): Py_EndInterpreter"},
    {"park", cx_park, METH_O,
     "park(obj) -> token; keeps a reference for drop_parked()"},
    {"drop_with_error", cx_drop_with_error, METH_VARARGS,
     "drop_with_error(box, exc_class) -> class name pending after "
     "releasing box's one object with exc_class pending, or None"},
    {"drop_parked", cx_drop_parked, METH_VARARGS,
     "drop_parked(interp, token): release the parked reference there"},
    {"call_in", cx_call_in, METH_VARARGS,
     "call_in(interp, f, args[, kwargs]) -> f(*args, **kwargs) run there"},
    {"hammer", cx_hammer, METH_VARARGS,
     "hammer(codes, index, threads, rounds, shared) -> per-thread "
     "(set errors, get errors, wrong reads, first wrong, expected)"},
    {"address", cx_code_address, METH_O,
     "address(obj) -> the address a hook records for obj"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef cx_module = {
    PyModuleDef_HEAD_INIT,
    "_coextra_cpython",
    "Calls the co_extra API of this interpreter for the coextra suite.",
    -1,
    cx_methods,
    NULL,
    NULL,
    NULL,
    NULL};

PyMODINIT_FUNC
PyInit__coextra_cpython(void)
{
    PyObject *m = PyModule_Create(&cx_module);

    if (m == NULL) {
        return NULL;
    }
    cx_tstates[0] = PyThreadState_Get();
    cx_main_thread = (unsigned long)PyThread_get_thread_ident();
    cx_ninterps = 1;
    cx_free_lock = PyThread_allocate_lock();
    if (cx_free_lock == NULL) {
        Py_DECREF(m);
        return PyErr_NoMemory();
    }
#ifdef Py_GIL_DISABLED
    /* Without this, importing the module would turn the GIL back on and
       the free-threaded build would not be free-threaded under test. */
    if (PyUnstable_Module_SetGIL(m, Py_MOD_GIL_NOT_USED) < 0) {
        Py_DECREF(m);
        return NULL;
    }
#endif
    cx_install_allocators();
    if (PyModule_AddIntConstant(m, "PEP9999", CX_PEP9999) < 0 ||
        PyModule_AddIntConstant(m, "WATCHERS", CX_WATCHERS) < 0 ||
        PyModule_AddIntConstant(m, "OWN_GIL", CX_HAVE_OWN_GIL) < 0 ||
        PyModule_AddIntConstant(m, "FREE_TAGS", CX_FREE_TAGS) < 0 ||
        PyModule_AddStringConstant(m, "REQUEST_NAME", CX_REQUEST_NAME) < 0 ||
        PyModule_AddStringConstant(m, "GET_NAME", CX_GET_NAME) < 0 ||
        PyModule_AddStringConstant(m, "SET_NAME", CX_SET_NAME) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
