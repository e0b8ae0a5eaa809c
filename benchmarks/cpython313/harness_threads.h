/*
 * harness_threads.h -- the threads command: reads of one code object by one
 * and by two threads, per design.
 *
 * Part of the like-for-like harness: harness.c includes it (one
 * translation unit, so that every case and helper stays static).
 */
#ifndef HARNESS_THREADS_H
#define HARNESS_THREADS_H

/* ---- threads -------------------------------------------------------- */

typedef struct {
    int design; /* 0 api, 1 api_late, 2 table */
    size_t n;
    pthread_barrier_t *start;
    uintptr_t sum;
    double cpu_ns;           /* the thread's CPU time in its loop */
    double begin_ns, end_ns; /* wall clock around its loop */
    int failed;
} reader;

static double
thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static void *
reader_main(void *arg)
{
    reader *r = arg;
    PyGILState_STATE state = PyGILState_Ensure();
    PyObject *co = r->design == 1 ? codes_late[0] : codes_inline[0];
    Py_ssize_t index = get_index;
    uintptr_t acc = 0;
    pthread_barrier_wait(r->start);
    r->begin_ns = now_ns();
    double cpu_start = thread_cpu_ns();
    for (size_t i = 0; i < r->n; i++) {
        PyObject *o = co;
        LAUNDER(o);
        if (r->design == 2) {
            acc += (uintptr_t)code_table_get(&get_table, o);
            continue;
        }
        void *value;
        if (PyUnstable_Code_GetExtra(o, index, &value) < 0) {
            r->failed = 1;
            break;
        }
        acc += (uintptr_t)value;
    }
    r->cpu_ns = thread_cpu_ns() - cpu_start;
    r->end_ns = now_ns();
    r->sum = acc;
    PyGILState_Release(state);
    return NULL;
}

/* Wall time of `threads` readers doing n reads each of one code object,
   from the first one's start to the last one's end (each thread reads
   the clock itself: the main thread may wake up late from the barrier),
   and the most CPU time one of them spent in its loop. */
static int
time_readers(int design, int threads, size_t n, double *ns, double *cpu)
{
    pthread_t ids[2];
    reader readers[2];
    pthread_barrier_t start;
    int rc = 0;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    /* Detach (release the GIL on a default build) while the readers
       run, as Py_BEGIN_ALLOW_THREADS does. */
    PyThreadState *saved = PyEval_SaveThread();
    for (int t = 0; t < threads; t++) {
        readers[t] = (reader){design, n, &start, 0, 0.0, 0.0, 0.0, 0};
        pthread_create(&ids[t], NULL, reader_main, &readers[t]);
    }
    pthread_barrier_wait(&start);
    double begin = 0.0, end = 0.0;
    *cpu = 0.0;
    for (int t = 0; t < threads; t++) {
        pthread_join(ids[t], NULL);
        rc |= readers[t].failed;
        sink += readers[t].sum;
        if (t == 0 || readers[t].begin_ns < begin) {
            begin = readers[t].begin_ns;
        }
        end = readers[t].end_ns > end ? readers[t].end_ns : end;
        *cpu = readers[t].cpu_ns > *cpu ? readers[t].cpu_ns : *cpu;
    }
    *ns = end - begin;
    PyEval_RestoreThread(saved);
    pthread_barrier_destroy(&start);
    return rc ? -1 : 0;
}

static int
cmd_threads(size_t n, int repeats)
{
    static const char *const designs[] = {"api", "api_late", "table"};
    /* best[design][threads - 1]: least wall time over the repeats;
       cpu[...]: least CPU time of the slowest thread. */
    double best[3][2], cpu[3][2];
    for (int r = 0; r < repeats; r++) {
        for (int d = 0; d < 3; d++) {
            for (int t = 1; t <= 2; t++) {
                double ns, cpu_ns;
                if (time_readers(d, t, n, &ns, &cpu_ns) < 0) {
                    return 1;
                }
                if (r == 0 || ns < best[d][t - 1]) {
                    best[d][t - 1] = ns;
                }
                if (r == 0 || cpu_ns < cpu[d][t - 1]) {
                    cpu[d][t - 1] = cpu_ns;
                }
            }
        }
    }
    printf("{\"reads_per_thread\": %zu, \"repeats\": %d, \"designs\": {", n,
           repeats);
    for (int d = 0; d < 3; d++) {
        /* Reads per second, all threads together. */
        double one = (double)n / best[d][0] * 1e9;
        double two = 2.0 * (double)n / best[d][1] * 1e9;
        /* The same from each thread's CPU time: what contention costs a
           thread that is running, whatever else the machine runs. */
        double ratio_cpu = 2.0 * cpu[d][0] / cpu[d][1];
        printf("%s\"%s\": {\"reads_per_s_1\": %.0f, \"reads_per_s_2\": %.0f, "
               "\"ratio\": %.4f, \"ratio_cpu\": %.4f}",
               d ? ", " : "", designs[d], one, two, two / one, ratio_cpu);
    }
    printf("}}\n");
    return 0;
}

#endif /* HARNESS_THREADS_H */
