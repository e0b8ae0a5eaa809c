/*
 * cx_hammer.h -- native threads that call Get/Set in C, so that on a
 * free-threaded build the calls truly overlap.
 *
 * Part of the _coextra_cpython extension: _coextra_cpython.c includes
 * it (one translation unit, so that every helper stays static).
 */
#ifndef CX_HAMMER_H
#define CX_HAMMER_H

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

#endif /* CX_HAMMER_H */
