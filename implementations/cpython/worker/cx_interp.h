/*
 * cx_interp.h -- the interpreters the worker drives (main, legacy
 * sub-interpreters, interpreters with their own GIL), the thread states of
 * the suite's threads in them, and the object lifetimes the suite controls
 * (parked objects, destruction with an exception pending).
 *
 * Part of the _coextra_cpython extension: _coextra_cpython.c includes
 * it (one translation unit, so that every helper stays static).
 */
#ifndef CX_INTERP_H
#define CX_INTERP_H

/* -- interpreters ------------------------------------------------------- */

/* Thread states of the interpreters the worker drives; [0] is the main
   interpreter.  Legacy sub-interpreters come from Py_NewInterpreter(),
   which shares the GIL and the object allocator with the main interpreter
   on every version.  On 3.12+ an interpreter may instead get a GIL and an
   object allocator of its own (PEP 684: Py_NewInterpreterFromConfig with
   PyInterpreterConfig_OWN_GIL); cx_own_gil[] marks those.  Switching to
   or from one of them must release one GIL and take the other, so it goes
   through PyEval_SaveThread()/PyEval_RestoreThread() instead of a plain
   PyThreadState_Swap(). */
#define CX_MAX_INTERPS 32
static PyThreadState *cx_tstates[CX_MAX_INTERPS];
static int cx_own_gil[CX_MAX_INTERPS];
static int cx_ninterps;

#if PY_VERSION_HEX >= 0x030C0000
#define CX_HAVE_OWN_GIL 1
#else
#define CX_HAVE_OWN_GIL 0
#endif

/* The worker's main thread, which owns every thread state above. */
static unsigned long cx_main_thread;

/* Other worker threads (the suite's concurrent calls) get thread states
   of their own in a sub-interpreter the first time they use it, since a
   thread state must never run on two threads.  Each thread finds its own
   in cx_thread_tstates; cx_other_tstates lists them all, so that ending
   the interpreter can delete them first (Py_EndInterpreter must find its
   thread state the interpreter's last).  Guarded by cx_free_lock. */
#define CX_MAX_OTHER_TSTATES 256
static __thread PyThreadState *cx_thread_tstates[CX_MAX_INTERPS];
static PyThreadState *cx_other_tstates[CX_MAX_OTHER_TSTATES];
static int cx_other_interp[CX_MAX_OTHER_TSTATES];
static int cx_nother;
static PyThread_type_lock cx_free_lock;

/* Return the worker's number of the interpreter of thread state `ts`
   (0, the main interpreter, for a thread state the worker does not
   know, such as a worker thread's). */
static int
cx_current_interp(PyThreadState *ts)
{
    int i;

    for (i = 1; i < cx_ninterps; i++) {
        if (cx_tstates[i] != NULL && cx_tstates[i]->interp == ts->interp) {
            return i;
        }
    }
    return 0;
}

/* Make interpreter `interp` current; *prev receives the thread state to
   restore with cx_leave(), or NULL when nothing had to change.  Worker
   threads other than the main one (the suite's concurrent calls) use
   thread states of their own (cx_thread_tstates). */
static PyThreadState *cx_other_tstate(int interp);

static int
cx_enter(int interp, PyThreadState **prev)
{
    PyThreadState *current = PyThreadState_Get();
    PyThreadState *target;

    if (interp < 0 || interp >= cx_ninterps || cx_tstates[interp] == NULL) {
        PyErr_SetString(PyExc_ValueError, "unknown or ended interpreter");
        return -1;
    }
    if (current->interp == cx_tstates[interp]->interp) {
        *prev = NULL;
        return 0;
    }
    target = cx_tstates[interp];
    /* A long before 3.7, an unsigned long since. */
    if ((unsigned long)PyThread_get_thread_ident() != cx_main_thread) {
        target = cx_thread_tstates[interp];
        if (target == NULL) {
            target = cx_other_tstate(interp);
            if (target == NULL) {
                return -1;
            }
        }
    }
    if (cx_own_gil[interp] || cx_own_gil[cx_current_interp(current)]) {
        /* Two GILs: give up the current one, then take the target's. */
        *prev = PyEval_SaveThread();
        PyEval_RestoreThread(target);
    } else {
        *prev = PyThreadState_Swap(target);
    }
    return 0;
}

/* Make this (non-main) thread a thread state in interpreter `interp`. */
static PyThreadState *
cx_other_tstate(int interp)
{
    PyThreadState *ts;

    PyThread_acquire_lock(cx_free_lock, WAIT_LOCK);
    if (cx_nother == CX_MAX_OTHER_TSTATES) {
        PyThread_release_lock(cx_free_lock);
        PyErr_SetString(PyExc_RuntimeError,
                        "too many worker threads used sub-interpreters");
        return NULL;
    }
    ts = PyThreadState_New(cx_tstates[interp]->interp);
    if (ts == NULL) {
        PyThread_release_lock(cx_free_lock);
        PyErr_NoMemory();
        return NULL;
    }
    cx_other_tstates[cx_nother] = ts;
    cx_other_interp[cx_nother] = interp;
    cx_nother++;
    PyThread_release_lock(cx_free_lock);
    cx_thread_tstates[interp] = ts;
    return ts;
}

/* Delete the other threads' thread states in `interp`, whose own thread
   state is current; those threads are idle (the suite waits for them). */
static void
cx_drop_other_tstates(int interp)
{
    int i;

    PyThread_acquire_lock(cx_free_lock, WAIT_LOCK);
    for (i = 0; i < cx_nother; i++) {
        if (cx_other_tstates[i] != NULL && cx_other_interp[i] == interp) {
            PyThreadState_Clear(cx_other_tstates[i]);
            PyThreadState_Delete(cx_other_tstates[i]);
            cx_other_tstates[i] = NULL;
        }
    }
    PyThread_release_lock(cx_free_lock);
}

static void
cx_leave(PyThreadState *prev)
{
    PyThreadState *current;

    if (prev == NULL) {
        return;
    }
    current = PyThreadState_Get();
    if (cx_own_gil[cx_current_interp(current)] ||
        cx_own_gil[cx_current_interp(prev)]) {
        PyEval_SaveThread();
        PyEval_RestoreThread(prev);
    } else {
        PyThreadState_Swap(prev);
    }
}

/* Convert a Python int to a pointer-sized word, accepting negative
   numbers as their two's complement. */
static int
cx_word(PyObject *obj, uintptr_t *out)
{
    unsigned long long v = PyLong_AsUnsignedLongLongMask(obj);

    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    *out = (uintptr_t)v;
    return 0;
}

/* Return a new reference to the referent of a weak reference, or NULL
   (without an exception) if it is gone or being destroyed. */
static PyObject *
cx_deref(PyObject *ref)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *obj = NULL;

    if (PyWeakref_GetRef(ref, &obj) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return obj;
#else
    PyObject *obj = PyWeakref_GetObject(ref);

    /* A free function can run while its own target is being destroyed:
       its reference count is then 0 and it must not be revived. */
    if (obj == NULL || obj == Py_None || Py_REFCNT(obj) <= 0) {
        PyErr_Clear();
        return NULL;
    }
    Py_INCREF(obj);
    return obj;
#endif
}

/* Construct one code object (a single expression: no nested code) and
   destroy it again; used by the NEW_CODE actions. */
static int
cx_new_code(void)
{
    PyObject *code =
        Py_CompileString("None", "<coextra-action>", Py_eval_input);

    if (code == NULL) {
        return -1;
    }
    Py_DECREF(code);
    return 0;
}

#if CX_HAVE_OWN_GIL
/* Create an interpreter with its own GIL and object allocator, the
   isolated configuration of PEP 684.  Py_NewInterpreterFromConfig
   releases the caller's GIL and returns holding the new one; on failure
   nothing is current. */
static PyThreadState *
cx_new_own_gil_interpreter(PyThreadState *prev, PyObject **error)
{
    PyThreadState *sub = NULL;
    PyStatus status;
    PyInterpreterConfig config;

    memset(&config, 0, sizeof(config));
    config.use_main_obmalloc = 0;
    config.allow_fork = 0;
    config.allow_exec = 0;
    config.allow_threads = 1;
    config.allow_daemon_threads = 0;
    config.check_multi_interp_extensions = 1;
    config.gil = PyInterpreterConfig_OWN_GIL;
    status = Py_NewInterpreterFromConfig(&sub, &config);
    if (PyStatus_Exception(status)) {
        PyEval_RestoreThread(prev);
        *error = PyUnicode_FromFormat(
            "Py_NewInterpreterFromConfig(OWN_GIL) failed: %s",
            status.err_msg ? status.err_msg : "no message");
        return NULL;
    }
    PyEval_SaveThread();
    PyEval_RestoreThread(prev);
    return sub;
}
#endif

static PyObject *
cx_new_interpreter(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyThreadState *prev, *sub;
    int own_gil = 0;

    if (!PyArg_ParseTuple(args, "|p", &own_gil)) {
        return NULL;
    }
    if (cx_ninterps == CX_MAX_INTERPS) {
        PyErr_SetString(PyExc_OverflowError, "too many interpreters");
        return NULL;
    }
    prev = PyThreadState_Get();
    if (own_gil) {
#if CX_HAVE_OWN_GIL
        PyObject *error = NULL;

        sub = cx_new_own_gil_interpreter(prev, &error);
        if (sub == NULL) {
            if (error != NULL) {
                PyErr_SetObject(PyExc_RuntimeError, error);
                Py_DECREF(error);
            }
            return NULL;
        }
#else
        PyErr_SetString(PyExc_NotImplementedError,
                        "interpreters with their own GIL need 3.12+");
        return NULL;
#endif
    } else {
        sub = Py_NewInterpreter();
        /* Py_NewInterpreter leaves the new interpreter current (or none
           on failure); the worker keeps running in the main one. */
        PyThreadState_Swap(prev);
        if (sub == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "Py_NewInterpreter failed");
            return NULL;
        }
    }
    cx_tstates[cx_ninterps] = sub;
    cx_own_gil[cx_ninterps] = own_gil;
    return PyLong_FromLong(cx_ninterps++);
}

static PyObject *
cx_end_interpreter(PyObject *Py_UNUSED(self), PyObject *args)
{
    int interp;
    PyThreadState *prev;

    if (!PyArg_ParseTuple(args, "i", &interp)) {
        return NULL;
    }
    if (interp == 0) {
        PyErr_SetString(PyExc_ValueError, "cannot end the main interpreter");
        return NULL;
    }
    if ((unsigned long)PyThread_get_thread_ident() != cx_main_thread) {
        PyErr_SetString(PyExc_ValueError,
                        "sub-interpreters are ended from the worker's main "
                        "thread only");
        return NULL;
    }
    if (cx_enter(interp, &prev) < 0) {
        return NULL;
    }
    cx_drop_other_tstates(interp);
    Py_EndInterpreter(cx_tstates[interp]);
    cx_tstates[interp] = NULL;
    if (cx_own_gil[interp]) {
        /* Nothing is current now and the ended interpreter's GIL is
           gone: take the main one back. */
        PyEval_RestoreThread(prev != NULL ? prev : cx_tstates[0]);
    } else if (prev != NULL) {
        /* Not cx_leave(): the ended interpreter's thread state is gone,
           and whether one is still current differs between versions. */
        PyThreadState_Swap(prev);
    }
    Py_RETURN_NONE;
}

/* Objects parked for drop_parked(): park(obj) keeps a strong reference
   here and returns a token, so that the caller can let go of every
   reference the main interpreter holds (its argument tuples and lists
   included) before drop_parked() releases the last one inside the
   object's own interpreter.  An object of an interpreter with its own
   allocator must die there, and nothing the main interpreter allocated
   may be freed there. */
#define CX_MAX_PARKED 64
static PyObject *cx_parked[CX_MAX_PARKED];

static PyObject *
cx_park(PyObject *Py_UNUSED(self), PyObject *obj)
{
    int i;

    PyThread_acquire_lock(cx_free_lock, WAIT_LOCK);
    for (i = 0; i < CX_MAX_PARKED; i++) {
        if (cx_parked[i] == NULL) {
            Py_INCREF(obj);
            cx_parked[i] = obj;
            break;
        }
    }
    PyThread_release_lock(cx_free_lock);
    if (i == CX_MAX_PARKED) {
        PyErr_SetString(PyExc_OverflowError, "too many parked objects");
        return NULL;
    }
    return PyLong_FromLong(i);
}

/* drop_with_error(box, exc_class): release the one object of box (a
   list) while exc_class is the pending exception, then return the class
   name of the exception pending afterwards (None when none is), cleared.
   The caller holds no other reference, so the object is destroyed here,
   with the exception set: what a Py_DECREF in an error path does
   (R-FREE-12). */
static PyObject *
cx_drop_with_error(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *box, *exc_class, *obj, *type, *value, *traceback, *name;

    if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &box, &exc_class)) {
        return NULL;
    }
    if (PyList_GET_SIZE(box) != 1 || !PyExceptionClass_Check(exc_class)) {
        PyErr_SetString(PyExc_ValueError,
                        "drop_with_error(box, exc_class): box must hold "
                        "one object and exc_class be an exception class");
        return NULL;
    }
    obj = PyList_GET_ITEM(box, 0);
    Py_INCREF(obj);
    if (PyList_SetSlice(box, 0, 1, NULL) < 0) {
        Py_DECREF(obj);
        return NULL;
    }
    PyErr_SetNone(exc_class);
    Py_DECREF(obj);
    if (!PyErr_Occurred()) {
        Py_RETURN_NONE;
    }
    PyErr_Fetch(&type, &value, &traceback);
    name = PyUnicode_FromString(((PyTypeObject *)type)->tp_name);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(traceback);
    return name;
}

static PyObject *
cx_drop_parked(PyObject *Py_UNUSED(self), PyObject *args)
{
    int interp, token;
    PyObject *obj;
    PyThreadState *prev;

    if (!PyArg_ParseTuple(args, "ii", &interp, &token)) {
        return NULL;
    }
    if (token < 0 || token >= CX_MAX_PARKED) {
        PyErr_SetString(PyExc_ValueError, "no such parked object");
        return NULL;
    }
    PyThread_acquire_lock(cx_free_lock, WAIT_LOCK);
    obj = cx_parked[token];
    cx_parked[token] = NULL;
    PyThread_release_lock(cx_free_lock);
    if (obj == NULL) {
        PyErr_SetString(PyExc_ValueError, "no such parked object");
        return NULL;
    }
    if (cx_enter(interp, &prev) < 0) {
        /* Not in its interpreter: keep it rather than free it wrongly. */
        PyThread_acquire_lock(cx_free_lock, WAIT_LOCK);
        cx_parked[token] = obj;
        PyThread_release_lock(cx_free_lock);
        return NULL;
    }
    Py_DECREF(obj);
    cx_leave(prev);
    Py_RETURN_NONE;
}

/* Call callable(*args) with interpreter `interp` current, so that what it
   constructs (code objects above all) is constructed by that
   interpreter; an exception it raises is carried back. */
static PyObject *
cx_call_in(PyObject *Py_UNUSED(self), PyObject *args)
{
    int interp;
    PyObject *callable, *call_args, *kwargs = NULL, *result, *type, *exc;
    PyObject *tb;
    PyThreadState *prev;

    if (!PyArg_ParseTuple(args, "iOO!|O!", &interp, &callable, &PyTuple_Type,
                          &call_args, &PyDict_Type, &kwargs) ||
        cx_enter(interp, &prev) < 0) {
        return NULL;
    }
    CX_ARM();
    result = PyObject_Call(callable, call_args, kwargs);
    CX_DISARM();
    PyErr_Fetch(&type, &exc, &tb);
    cx_leave(prev);
    PyErr_Restore(type, exc, tb);
    return result;
}

#endif /* CX_INTERP_H */
