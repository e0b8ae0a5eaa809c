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
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#if PY_VERSION_HEX < 0x030B0000
/* From 3.11 on, Python.h includes the code object API itself. */
#include <code.h>
#endif
#include <stdint.h>
#include <stdlib.h>

/* -- which API the headers offer --------------------------------------- */

#if defined(PyUnstable_CODE_EXTRA_MIN_INDICES) || defined(Py_HAVE_PEP8523)
/* A patched interpreter implementing the proposed API of PEP 9999. */
#define CX_PEP8523 1
#else
#define CX_PEP8523 0
#endif

#if CX_PEP8523 || PY_VERSION_HEX >= 0x030C0000
/* 3.12 renamed the functions; the old names survive only as static
   inline wrappers, so call the exported names. */
#define CX_REQUEST PyUnstable_Eval_RequestCodeExtraIndex
#define CX_GET PyUnstable_Code_GetExtra
#define CX_SET PyUnstable_Code_SetExtra
#define CX_REQUEST_NAME "PyUnstable_Eval_RequestCodeExtraIndex"
#define CX_GET_NAME "PyUnstable_Code_GetExtra"
#define CX_SET_NAME "PyUnstable_Code_SetExtra"
#else
#define CX_REQUEST _PyEval_RequestCodeExtraIndex
#define CX_GET _PyCode_GetExtra
#define CX_SET _PyCode_SetExtra
#define CX_REQUEST_NAME "_PyEval_RequestCodeExtraIndex"
#define CX_GET_NAME "_PyCode_GetExtra"
#define CX_SET_NAME "_PyCode_SetExtra"
#endif

#if !CX_PEP8523 && PY_VERSION_HEX >= 0x030C0000
/* Stock 3.12+ has no constructor hook; code watchers are the nearest
   real mechanism (see the comment above cx_watch_0 for what they cannot
   express). */
#define CX_WATCHERS 1
#else
#define CX_WATCHERS 0
#endif

#define CX_FREE_TAGS 16

/* Watchers: CPython offers 8 per interpreter (CODE_MAX_WATCHERS); we
   provide one C callback more than that, so that exhaustion is always
   reported by CPython, never by the adapter.  The PEP chain passes an
   argument to its hooks, so one callback serves any number of slots;
   there are more slots than the patched 3.11 accepts hooks (255), so
   that there too the interpreter reports exhaustion, not the adapter. */
#if CX_WATCHERS
#define CX_HOOK_SLOTS 9
#else
#define CX_HOOK_SLOTS 1024
#endif

/* Actions; the numbers are shared with worker.py. */
enum {
    CX_RECORD = 0,
    CX_FREE_GET = 1,
    CX_FREE_SET = 2,
    CX_FREE_NEW_CODE = 3,
    CX_FREE_CHECK_ERROR = 4,
    CX_FREE_SET_ERROR = 5,
    CX_HOOK_FAIL = 1,
    CX_HOOK_SET_EXTRA = 2,
    CX_HOOK_NEW_CODE = 3,
    CX_HOOK_ADD_HOOK = 4,
    CX_HOOK_REMOVE_HOOK = 5,
    CX_HOOK_FAIL_WITHOUT_EXCEPTION = 6
};

/* -- helpers ------------------------------------------------------------ */

/* Copy the class name of the pending exception into buf and clear it.
   Returns 1 if an exception was pending. */
static int
cx_fetch_error(char *buf, size_t size)
{
    PyObject *type, *value, *tb;

    if (!PyErr_Occurred()) {
        buf[0] = '\0';
        return 0;
    }
    PyErr_Fetch(&type, &value, &tb);
    PyOS_snprintf(buf, size, "%s", ((PyTypeObject *)type)->tp_name);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return 1;
}

/* An exception left set by a call that reported success; the suite reads
   it through pending_error(). */
static char cx_pending[64];

/* After an API call, in the interpreter that made it (the error state
   belongs to its thread state): move the exception's class name into
   name and clear it.  An exception left by a call that succeeded is kept
   for pending_error() instead. */
static void
cx_capture(long long rc, char *name, size_t size)
{
    if (cx_fetch_error(name, size) && rc >= 0) {
        PyOS_snprintf(cx_pending, sizeof(cx_pending), "%s", name);
        name[0] = '\0';
    }
}

/* Build (rc, error-or-None) from what cx_capture() found. */
static PyObject *
cx_result(long long rc, const char *name)
{
    return Py_BuildValue("(Lz)", rc, name[0] ? name : NULL);
}

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

/* -- allocation failure ------------------------------------------------- */

/* fail_allocations(after, count) is served by wrapping CPython's "mem"
   and "object" allocator domains.  Failures are armed only while an API
   call (or a construction the suite asked for) runs, so the worker's own
   bookkeeping between calls neither consumes nor suffers them. */
static PyMemAllocatorEx cx_orig_mem, cx_orig_obj;
static long cx_fail_after, cx_fail_count;
static int cx_armed;

static int
cx_should_fail(void)
{
    if (!cx_armed) {
        return 0;
    }
    if (cx_fail_after > 0) {
        cx_fail_after--;
        return 0;
    }
    if (cx_fail_count > 0) {
        cx_fail_count--;
        return 1;
    }
    return 0;
}

static void *
cx_malloc(void *ctx, size_t size)
{
    PyMemAllocatorEx *orig = (PyMemAllocatorEx *)ctx;

    return cx_should_fail() ? NULL : orig->malloc(orig->ctx, size);
}

static void *
cx_calloc(void *ctx, size_t nelem, size_t elsize)
{
    PyMemAllocatorEx *orig = (PyMemAllocatorEx *)ctx;

    return cx_should_fail() ? NULL : orig->calloc(orig->ctx, nelem, elsize);
}

static void *
cx_realloc(void *ctx, void *ptr, size_t size)
{
    PyMemAllocatorEx *orig = (PyMemAllocatorEx *)ctx;

    return cx_should_fail() ? NULL : orig->realloc(orig->ctx, ptr, size);
}

static void
cx_free(void *ctx, void *ptr)
{
    PyMemAllocatorEx *orig = (PyMemAllocatorEx *)ctx;

    orig->free(orig->ctx, ptr);
}

static void
cx_install_allocators(void)
{
    PyMemAllocatorEx mem = {&cx_orig_mem, cx_malloc, cx_calloc, cx_realloc,
                            cx_free};
    PyMemAllocatorEx obj = {&cx_orig_obj, cx_malloc, cx_calloc, cx_realloc,
                            cx_free};

    /* The wrappers hand every call to the allocator they replace, so
       blocks allocated before and after installation mix freely. */
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &cx_orig_mem);
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &cx_orig_obj);
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &mem);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &obj);
}

#define CX_ARM() (cx_armed = 1)
#define CX_DISARM() (cx_armed = 0)

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

#if CX_WATCHERS || CX_PEP8523

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

#if CX_PEP8523
static int
cx_pep_hook(PyObject *code, void *arg)
{
    return cx_hook_common((cx_hook_slot *)arg, code);
}
#endif
#endif /* CX_WATCHERS || CX_PEP8523 */

/* -- wrappers exposed to worker.py ------------------------------------- */

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
    char name[64];

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
    cx_capture(rc, name, sizeof(name));
    cx_leave(prev);
    return cx_result(rc, name);
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
    char name[64];

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
    cx_capture(rc, name, sizeof(name));
    cx_leave(prev);
    pair = cx_result(rc, name);
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
    char name[64];

    if (!PyArg_ParseTuple(args, "iOnO", &interp, &code, &index, &value)) {
        return NULL;
    }
    if (cx_word(value, &word) < 0 || cx_enter(interp, &prev) < 0) {
        return NULL;
    }
    CX_ARM();
    rc = CX_SET(code, index, (void *)word);
    CX_DISARM();
    cx_capture(rc, name, sizeof(name));
    cx_leave(prev);
    return cx_result(rc, name);
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

#if CX_PEP8523 && defined(Py_HAVE_PEP8523)
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
    char name[64];

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
    cx_capture(rc, name, sizeof(name));
    cx_leave(prev);
    pair = cx_result(rc, name);
    if (pair == NULL) {
        return NULL;
    }
    result =
        Py_BuildValue("(OK)", pair, (unsigned long long)(uintptr_t)expected);
    Py_DECREF(pair);
    return result;
}
#endif

#if CX_WATCHERS || CX_PEP8523
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
    char name[64];

    if (!PyArg_ParseTuple(args, "ii", &interp, &id) ||
        cx_enter(interp, &prev) < 0) {
        return NULL;
    }
    CX_ARM();
    rc = cx_hook_remove(id);
    CX_DISARM();
    cx_capture(rc, name, sizeof(name));
    cx_leave(prev);
    return cx_result(rc, name);
}
#endif

#if CX_PEP8523
static PyObject *
cx_release_index(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_ssize_t index;
    int interp, rc;
    PyThreadState *prev;
    char name[64];

    if (!PyArg_ParseTuple(args, "in", &interp, &index) ||
        cx_enter(interp, &prev) < 0) {
        return NULL;
    }
    CX_ARM();
    rc = PyUnstable_Eval_ReleaseCodeExtraIndex(index);
    CX_DISARM();
    cx_capture(rc, name, sizeof(name));
    cx_leave(prev);
    return cx_result(rc, name);
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
#if CX_PEP8523
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
cx_fail_allocations(PyObject *Py_UNUSED(self), PyObject *args)
{
    long after, count;

    if (!PyArg_ParseTuple(args, "ll", &after, &count)) {
        return NULL;
    }
    cx_fail_after = after;
    cx_fail_count = count;
    Py_RETURN_NONE;
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
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            free(taken);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
    free(taken);
    item = Py_BuildValue("(On)", list, lost);
    Py_DECREF(list);
    return item;
}

#if CX_WATCHERS || CX_PEP8523
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
        if (item == NULL || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            free(taken);
            Py_DECREF(list);
            return NULL;
        }
        Py_DECREF(item);
    }
    free(taken);
    item = Py_BuildValue("(On)", list, lost);
    Py_DECREF(list);
    return item;
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

/* -- native threads hammering Get/Set ---------------------------------- */

/* The suite's own threads call the API one request at a time over a pipe,
   which leaves little room for real overlap.  hammer() runs the loop in C
   on several native threads of the interpreter under test, so that on a
   free-threaded build calls truly run in parallel, for as many rounds as
   asked.  Each thread attaches a thread state of the main interpreter;
   between rounds it detaches (Py_BEGIN_ALLOW_THREADS), so that on a build
   with a GIL the threads interleave between calls. */

/* Value stored by thread t in round r on code object k: odd (never a
   valid pointer, never NULL) and unique, so that every free call and
   every read can be traced to one Set. */
#define CX_HAMMER_VALUE(t, k, r)                                              \
    ((((uintptr_t)(t) + 1) << 40) | ((uintptr_t)(k) << 20) |                  \
     ((uintptr_t)(r) << 1) | 1)

typedef struct {
    int thread;
    int nthreads;
    PyObject **codes;
    Py_ssize_t ncodes;
    int shared;
    Py_ssize_t index;
    long rounds;
    int *ready;
    PyThread_type_lock done;
    /* Results. */
    long set_errors, get_errors, wrong_reads;
    uintptr_t first_wrong, first_wrong_expected;
} cx_hammer_job;

/* Does v look like a value some thread of this run stored on code k? */
static int
cx_hammer_plausible(const cx_hammer_job *job, Py_ssize_t k, uintptr_t v)
{
    uintptr_t t = (v >> 40) - 1, kk = (v >> 20) & 0xFFFFF,
              r = (v >> 1) & 0x7FFFF;

    return (v & 1) && t < (uintptr_t)job->nthreads && kk == (uintptr_t)k &&
           r < (uintptr_t)job->rounds;
}

static void
cx_hammer_wrong(cx_hammer_job *job, uintptr_t got, uintptr_t expected)
{
    if (job->wrong_reads++ == 0) {
        job->first_wrong = got;
        job->first_wrong_expected = expected;
    }
}

static void
cx_hammer_thread(void *arg)
{
    cx_hammer_job *job = (cx_hammer_job *)arg;
    PyGILState_STATE gil;
    Py_ssize_t k, first;
    long r;

    /* Start together: spin until every thread is up. */
    __atomic_fetch_add(job->ready, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(job->ready, __ATOMIC_SEQ_CST) < job->nthreads) {
    }
    gil = PyGILState_Ensure();
    /* Shared: every thread walks every code object, so all threads race
       on each one (its first Set allocates the slot block).  Not shared:
       thread t owns codes[t], codes[t + n], ... */
    first = job->shared ? 0 : job->thread;
    for (k = first; k < job->ncodes; k += job->shared ? 1 : job->nthreads) {
        for (r = 0; r < job->rounds; r++) {
            uintptr_t value = CX_HAMMER_VALUE(job->thread, k, r);
            void *out = NULL;

            if (CX_SET(job->codes[k], job->index, (void *)value) < 0) {
                job->set_errors++;
                PyErr_Clear();
            }
            if (CX_GET(job->codes[k], job->index, &out) < 0) {
                job->get_errors++;
                PyErr_Clear();
            } else if (job->shared
                           ? !cx_hammer_plausible(job, k, (uintptr_t)out)
                           : (uintptr_t)out != value) {
                cx_hammer_wrong(job, (uintptr_t)out, value);
            }
            Py_BEGIN_ALLOW_THREADS Py_END_ALLOW_THREADS
        }
    }
    PyGILState_Release(gil);
    PyThread_release_lock(job->done);
}

static PyObject *
cx_hammer(PyObject *Py_UNUSED(self), PyObject *args)
{
    PyObject *codes_list, *result = NULL, **codes = NULL;
    Py_ssize_t index, ncodes, i;
    int nthreads, shared, ready = 0, started = 0;
    long rounds;
    cx_hammer_job *jobs = NULL;

    if (!PyArg_ParseTuple(args, "O!nilp", &PyList_Type, &codes_list, &index,
                          &nthreads, &rounds, &shared)) {
        return NULL;
    }
    ncodes = PyList_GET_SIZE(codes_list);
    if (nthreads < 1 || nthreads > 64 || rounds < 1 || rounds >= 0x80000 ||
        ncodes < 1 || ncodes >= 0x100000 || (!shared && ncodes < nthreads)) {
        PyErr_SetString(PyExc_ValueError, "hammer: arguments out of range");
        return NULL;
    }
#if PY_VERSION_HEX < 0x03070000
    /* Before 3.7 the GIL exists only once threads were initialised; the
       native threads below must find it. */
    PyEval_InitThreads();
#endif
    codes = PyMem_RawCalloc((size_t)ncodes, sizeof(*codes));
    jobs = PyMem_RawCalloc((size_t)nthreads, sizeof(*jobs));
    if (codes == NULL || jobs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (i = 0; i < ncodes; i++) {
        codes[i] = PyList_GET_ITEM(codes_list, i);
        Py_INCREF(codes[i]);
    }
    for (i = 0; i < nthreads; i++) {
        cx_hammer_job *job = &jobs[i];

        job->thread = (int)i;
        job->nthreads = nthreads;
        job->codes = codes;
        job->ncodes = ncodes;
        job->shared = shared;
        job->index = index;
        job->rounds = rounds;
        job->ready = &ready;
        job->done = PyThread_allocate_lock();
        if (job->done == NULL) {
            PyErr_NoMemory();
            break;
        }
        PyThread_acquire_lock(job->done, WAIT_LOCK);
    }
    if (!PyErr_Occurred()) {
        for (i = 0; i < nthreads; i++) {
            /* A long before 3.7, an unsigned long since; -1 on failure. */
            if ((long)PyThread_start_new_thread(cx_hammer_thread, &jobs[i]) ==
                -1L) {
                break;
            }
            started++;
        }
        if (started < nthreads) {
            /* Let the started threads pass the start line, then fail. */
            __atomic_fetch_add(&ready, nthreads - started, __ATOMIC_SEQ_CST);
        }
        Py_BEGIN_ALLOW_THREADS for (i = 0; i < started; i++)
        {
            PyThread_acquire_lock(jobs[i].done, WAIT_LOCK);
        }
        Py_END_ALLOW_THREADS if (started < nthreads)
        {
            PyErr_SetString(PyExc_RuntimeError,
                            "hammer: cannot start a thread");
        }
    }
    if (!PyErr_Occurred()) {
        result = PyList_New(nthreads);
        for (i = 0; result != NULL && i < nthreads; i++) {
            cx_hammer_job *job = &jobs[i];
            PyObject *item = Py_BuildValue(
                "(lllKK)", job->set_errors, job->get_errors, job->wrong_reads,
                (unsigned long long)job->first_wrong,
                (unsigned long long)job->first_wrong_expected);

            if (item == NULL) {
                Py_CLEAR(result);
                break;
            }
            PyList_SET_ITEM(result, i, item);
        }
    }
done:
    if (jobs != NULL) {
        for (i = 0; i < nthreads; i++) {
            if (jobs[i].done != NULL) {
                PyThread_free_lock(jobs[i].done);
            }
        }
    }
    if (codes != NULL) {
        for (i = 0; i < ncodes; i++) {
            Py_XDECREF(codes[i]);
        }
    }
    PyMem_RawFree(codes);
    PyMem_RawFree(jobs);
    return result;
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
#if CX_WATCHERS || CX_PEP8523
    {"add_hook", cx_add_hook, METH_VARARGS,
     "add_hook(interp, tag, action, index, value) -> (rc, error)"},
    {"remove_hook", cx_remove_hook, METH_VARARGS,
     "remove_hook(interp, id) -> (rc, error)"},
#endif
#if CX_PEP8523
    {"release_index", cx_release_index, METH_VARARGS,
     "release_index(interp, index) -> (rc, error)"},
    {"has_inline_extra", cx_has_inline_extra, METH_O,
     "has_inline_extra(obj) -> (rc, error)"},
#endif
#if CX_PEP8523 && defined(Py_HAVE_PEP8523)
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
#if CX_WATCHERS || CX_PEP8523
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
    if (PyModule_AddIntConstant(m, "PEP8523", CX_PEP8523) < 0 ||
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
