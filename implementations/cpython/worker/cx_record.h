/*
 * cx_record.h -- the 16 recording free functions and the recording constructor
 * hooks (PEP hooks or code watchers), with the logs worker.py takes.
 *
 * Part of the _coextra_cpython extension: _coextra_cpython.c includes
 * it (one translation unit, so that every helper stays static).
 */
#ifndef CX_RECORD_H
#define CX_RECORD_H

/* -- recording free functions ------------------------------------------ */

typedef struct {
    int tag;
    uintptr_t value;
    int has_result;
    long long result;
    char error[64];
} cx_free_call;

typedef struct {
    int action;
    PyObject *target; /* weak reference to a code object */
    Py_ssize_t index;
    uintptr_t value;
} cx_free_conf;

static cx_free_conf cx_free_confs[CX_FREE_TAGS];
static cx_free_call *cx_free_log;
static Py_ssize_t cx_free_len, cx_free_cap;
/* Calls that could not be recorded for lack of memory; reported so that
   a lost record is never mistaken for a call that did not happen. */
static Py_ssize_t cx_free_lost;
/* cx_free_lock (declared above) guards the free log: on a free-threaded
   build free functions run on several threads at once with nothing else
   serialising them. */

/* Append a record of the free call (tag, value); return its position in
   the log, or -1 if it could not be recorded.  The position, not a
   pointer, identifies it: another thread may move the log. */
static Py_ssize_t
cx_free_append(int tag, void *value)
{
    Py_ssize_t at = -1;

    PyThread_acquire_lock(cx_free_lock, WAIT_LOCK);
    if (cx_free_len == cx_free_cap) {
        Py_ssize_t cap = cx_free_cap ? 2 * cx_free_cap : 256;
        cx_free_call *log = realloc(cx_free_log, cap * sizeof(*log));

        if (log == NULL) {
            cx_free_lost++;
            PyThread_release_lock(cx_free_lock);
            return -1;
        }
        cx_free_log = log;
        cx_free_cap = cap;
    }
    at = cx_free_len++;
    cx_free_log[at].tag = tag;
    cx_free_log[at].value = (uintptr_t)value;
    cx_free_log[at].has_result = 0;
    cx_free_log[at].result = 0;
    cx_free_log[at].error[0] = '\0';
    PyThread_release_lock(cx_free_lock);
    return at;
}

static void
cx_free_common(int tag, void *value)
{
    cx_free_conf *conf = &cx_free_confs[tag];
    Py_ssize_t at = cx_free_append(tag, value);
    cx_free_call local, *call = &local;
    PyObject *type, *exc, *tb, *target;
    void *out;
    int rc = 0;

    /* A call with NULL is only recorded, as the suite's contract says: a
       consumer's free function ignores NULL. */
    if (at < 0 || conf->action == CX_RECORD || value == NULL) {
        return;
    }
    local.error[0] = '\0';
    local.result = 0;
    local.has_result = conf->action != CX_FREE_SET_ERROR;
    /* Free functions run inside deallocation, possibly while an
       exception is being handled: keep whatever is pending intact. */
    PyErr_Fetch(&type, &exc, &tb);
    switch (conf->action) {
    case CX_FREE_CHECK_ERROR:
        /* Whether the implementation called us with an exception set
           (R-FREE-12); it is put back below, as found. */
        call->result = type != NULL;
        break;
    case CX_FREE_GET:
    case CX_FREE_SET:
        target = conf->target ? cx_deref(conf->target) : NULL;
        if (target == NULL) {
            PyOS_snprintf(call->error, sizeof(call->error), "ReferenceError");
            call->result = -1;
            break;
        }
        if (conf->action == CX_FREE_GET) {
            out = NULL;
            rc = CX_GET(target, conf->index, &out);
            call->result = rc < 0 ? rc : (long long)(uintptr_t)out;
        } else {
            rc = CX_SET(target, conf->index, (void *)conf->value);
            call->result = rc;
        }
        Py_DECREF(target);
        cx_fetch_error(call->error, sizeof(call->error));
        break;
    case CX_FREE_NEW_CODE:
        call->result = cx_new_code();
        cx_fetch_error(call->error, sizeof(call->error));
        break;
    default:
        break;
    }
    PyErr_Restore(type, exc, tb);
    if (conf->action == CX_FREE_SET_ERROR) {
        /* A buggy free function: returns with an exception set. */
        PyErr_SetString(PyExc_RuntimeError, "free function failed");
    }
    PyThread_acquire_lock(cx_free_lock, WAIT_LOCK);
    cx_free_log[at].has_result = local.has_result;
    cx_free_log[at].result = local.result;
    memcpy(cx_free_log[at].error, local.error, sizeof(local.error));
    PyThread_release_lock(cx_free_lock);
}

/* Sixteen distinct C functions, one per tag. */
#define CX_FREE_FUNC(N)                                                       \
    static void cx_free_##N(void *value)                                      \
    {                                                                         \
        cx_free_common(N, value);                                             \
    }

CX_FREE_FUNC(0)
CX_FREE_FUNC(1)
CX_FREE_FUNC(2)
CX_FREE_FUNC(3)
CX_FREE_FUNC(4)
CX_FREE_FUNC(5)
CX_FREE_FUNC(6)
CX_FREE_FUNC(7)
CX_FREE_FUNC(8)
CX_FREE_FUNC(9)
CX_FREE_FUNC(10)
CX_FREE_FUNC(11)
CX_FREE_FUNC(12)
CX_FREE_FUNC(13)
CX_FREE_FUNC(14)
CX_FREE_FUNC(15)

static freefunc cx_free_funcs[CX_FREE_TAGS] = {
    cx_free_0,  cx_free_1,  cx_free_2,  cx_free_3,  cx_free_4,  cx_free_5,
    cx_free_6,  cx_free_7,  cx_free_8,  cx_free_9,  cx_free_10, cx_free_11,
    cx_free_12, cx_free_13, cx_free_14, cx_free_15,
};

/* -- recording constructor hooks --------------------------------------- */

#if CX_WATCHERS || CX_PEP9999

typedef struct {
    int used;
    PyInterpreterState *interp; /* where the hook is registered */
    int id;                     /* watcher id or PEP hook id */
    int tag;
    int action;
    Py_ssize_t index;
    uintptr_t value;
    int running; /* guards NEW_CODE against recursion */
} cx_hook_slot;

typedef struct {
    int tag;
    uintptr_t code;
} cx_hook_call;

static cx_hook_slot cx_hooks[CX_HOOK_SLOTS];
static cx_hook_call *cx_hook_log;
static Py_ssize_t cx_hook_len, cx_hook_cap, cx_hook_lost;

static int cx_hook_add(int tag, int action, Py_ssize_t index, uintptr_t value);
static int cx_hook_remove(int id);

/* The slot registered in the current interpreter with this tag. */
static cx_hook_slot *
cx_hook_by_tag(int tag)
{
    PyInterpreterState *interp = PyThreadState_Get()->interp;
    int i;

    for (i = 0; i < CX_HOOK_SLOTS; i++) {
        if (cx_hooks[i].used && cx_hooks[i].interp == interp &&
            cx_hooks[i].tag == tag) {
            return &cx_hooks[i];
        }
    }
    return NULL;
}

static int
cx_hook_common(cx_hook_slot *slot, PyObject *code)
{
    cx_hook_slot *other;
    int rc = 0;

    /* Free-threaded builds construct code objects on several threads
       at once: the log shares the free log's lock. */
    PyThread_acquire_lock(cx_free_lock, WAIT_LOCK);
    if (cx_hook_len == cx_hook_cap) {
        Py_ssize_t cap = cx_hook_cap ? 2 * cx_hook_cap : 1024;
        cx_hook_call *log = realloc(cx_hook_log, cap * sizeof(*log));

        if (log == NULL) {
            cx_hook_lost++;
        } else {
            cx_hook_log = log;
            cx_hook_cap = cap;
        }
    }
    if (cx_hook_len < cx_hook_cap) {
        cx_hook_log[cx_hook_len].tag = slot->tag;
        cx_hook_log[cx_hook_len].code = (uintptr_t)code;
        cx_hook_len++;
    }
    PyThread_release_lock(cx_free_lock);
    switch (slot->action) {
    case CX_HOOK_FAIL:
        PyErr_SetString(PyExc_RuntimeError, "coextra hook fails on purpose");
        return -1;
    case CX_HOOK_FAIL_WITHOUT_EXCEPTION:
        /* An error return with nothing set: R-HOOK-12. */
        return -1;
    case CX_HOOK_SET_EXTRA:
        return CX_SET(code, slot->index, (void *)slot->value);
    case CX_HOOK_NEW_CODE:
        if (!slot->running) {
            slot->running = 1;
            rc = cx_new_code();
            slot->running = 0;
        }
        return rc;
    case CX_HOOK_ADD_HOOK:
        if (cx_hook_by_tag((int)slot->value) != NULL) {
            return 0;
        }
        return cx_hook_add((int)slot->value, CX_RECORD, 0, 0) < 0 ? -1 : 0;
    case CX_HOOK_REMOVE_HOOK:
        other = cx_hook_by_tag((int)slot->value);
        return other == NULL ? 0 : cx_hook_remove(other->id);
    default:
        return 0;
    }
}

#if CX_WATCHERS
/*
 * Code watchers stand in for the PEP's constructor hook on stock 3.12+.
 * They are the real mechanism, but they cannot express everything a hook
 * chain promises, and the suite measures the difference:
 *  - a watcher receives no argument, so each hook needs its own C
 *    callback (nine: one more than CPython's eight watcher ids);
 *  - watchers run in ascending id order, not in registration order: a
 *    removed id is handed out again and its new owner then runs first;
 *  - an error in a watcher is reported with PyErr_WriteUnraisable and the
 *    code object is still returned (what the PEP asks for as well);
 *  - watchers are per interpreter, but ids are small integers shared by
 *    every extension of the process, and clearing an id that is not set
 *    raises ValueError;
 *  - watchers also see destruction (PY_CODE_EVENT_DESTROY); those events
 *    are ignored here.
 */
static int
cx_watch(int n, PyCodeEvent event, PyCodeObject *co)
{
    if (event != PY_CODE_EVENT_CREATE) {
        return 0;
    }
    return cx_hook_common(&cx_hooks[n], (PyObject *)co);
}

#define CX_WATCH_FUNC(N)                                                      \
    static int cx_watch_##N(PyCodeEvent event, PyCodeObject *co)              \
    {                                                                         \
        return cx_watch(N, event, co);                                        \
    }

CX_WATCH_FUNC(0)
CX_WATCH_FUNC(1)
CX_WATCH_FUNC(2)
CX_WATCH_FUNC(3)
CX_WATCH_FUNC(4)
CX_WATCH_FUNC(5)
CX_WATCH_FUNC(6)
CX_WATCH_FUNC(7)
CX_WATCH_FUNC(8)

static PyCode_WatchCallback cx_watch_funcs[CX_HOOK_SLOTS] = {
    cx_watch_0, cx_watch_1, cx_watch_2, cx_watch_3, cx_watch_4,
    cx_watch_5, cx_watch_6, cx_watch_7, cx_watch_8,
};
#endif

#if CX_PEP9999
static int
cx_pep_hook(PyObject *code, void *arg)
{
    return cx_hook_common((cx_hook_slot *)arg, code);
}
#endif
#endif /* CX_WATCHERS || CX_PEP9999 */

/* Append item (a new reference, or NULL after a failure) to list and
   drop the reference; -1 if item was NULL or appending failed. */
static int
cx_append_new(PyObject *list, PyObject *item)
{
    int rc = item == NULL ? -1 : PyList_Append(list, item);

    Py_XDECREF(item);
    return rc;
}

/* The answer of a take_*() call: (records, number lost); consumes list. */
static PyObject *
cx_log_answer(PyObject *list, Py_ssize_t lost)
{
    PyObject *answer = Py_BuildValue("(On)", list, lost);

    Py_DECREF(list);
    return answer;
}

static PyObject *
cx_take_free_calls(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused))
{
    PyObject *list = PyList_New(0), *item;
    Py_ssize_t i, len, lost;
    cx_free_call *taken;

    if (list == NULL) {
        return NULL;
    }
    /* Take the records out under the lock; build the answer without it. */
    PyThread_acquire_lock(cx_free_lock, WAIT_LOCK);
    taken = cx_free_log;
    len = cx_free_len;
    lost = cx_free_lost;
    cx_free_log = NULL;
    cx_free_len = cx_free_cap = cx_free_lost = 0;
    PyThread_release_lock(cx_free_lock);
    for (i = 0; i < len; i++) {
        cx_free_call *c = &taken[i];

        PyObject *result = Py_None;

        if (c->has_result) {
            result = PyLong_FromLongLong(c->result);
            if (result == NULL) {
                free(taken);
                Py_DECREF(list);
                return NULL;
            }
        } else {
            Py_INCREF(result);
        }
        /* "N" hands our reference to result over to the tuple. */
        item = Py_BuildValue("(iKNz)", c->tag, (unsigned long long)c->value,
                             result, c->error[0] ? c->error : NULL);
        if (cx_append_new(list, item) < 0) {
            free(taken);
            Py_DECREF(list);
            return NULL;
        }
    }
    free(taken);
    return cx_log_answer(list, lost);
}

#if CX_WATCHERS || CX_PEP9999
static PyObject *
cx_take_hook_calls(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused))
{
    PyObject *list = PyList_New(0), *item;
    Py_ssize_t i, len, lost;
    cx_hook_call *taken;

    if (list == NULL) {
        return NULL;
    }
    /* Take the records out under the lock; build the answer without it
       (building objects may construct nothing, but never hold a lock a
       hook on this thread could want). */
    PyThread_acquire_lock(cx_free_lock, WAIT_LOCK);
    taken = cx_hook_log;
    len = cx_hook_len;
    lost = cx_hook_lost;
    cx_hook_log = NULL;
    cx_hook_len = cx_hook_cap = cx_hook_lost = 0;
    PyThread_release_lock(cx_free_lock);
    for (i = 0; i < len; i++) {
        item = Py_BuildValue("(iK)", taken[i].tag,
                             (unsigned long long)taken[i].code);
        if (cx_append_new(list, item) < 0) {
            free(taken);
            Py_DECREF(list);
            return NULL;
        }
    }
    free(taken);
    return cx_log_answer(list, lost);
}
#endif

static PyObject *
cx_take_pending(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(unused))
{
    char name[64];

    if (cx_fetch_error(name, sizeof(name))) {
        return PyUnicode_FromString(name);
    }
    if (cx_pending[0] != '\0') {
        PyObject *result = PyUnicode_FromString(cx_pending);

        cx_pending[0] = '\0';
        return result;
    }
    Py_RETURN_NONE;
}

#endif /* CX_RECORD_H */
