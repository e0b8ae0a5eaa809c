/*
 * cx_common.h -- which co_extra API the interpreter's headers offer, the
 * action codes shared with worker.py, and how API errors are captured.
 *
 * Part of the _coextra_cpython extension: _coextra_cpython.c includes
 * it (one translation unit, so that every helper stays static).
 */
#ifndef CX_COMMON_H
#define CX_COMMON_H

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

#if defined(PyUnstable_CODE_EXTRA_MIN_INDICES) || defined(Py_HAVE_PEP9999)
/* A patched interpreter implementing the proposed API of PEP 9999. */
#define CX_PEP9999 1
#else
#define CX_PEP9999 0
#endif

#if CX_PEP9999 || PY_VERSION_HEX >= 0x030C0000
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

#if !CX_PEP9999 && PY_VERSION_HEX >= 0x030C0000
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

#endif /* CX_COMMON_H */
