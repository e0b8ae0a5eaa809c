/*
 * bench_main.c -- command-line driver of the C benchmark harness.
 *
 * Subcommands (all print one JSON object on stdout):
 *
 *   time US REPEATS    every micro case, each timed sample calibrated to
 *                      last about US microseconds, the cases interleaved
 *                      within each repeat so that a slow phase of the
 *                      machine hits all of them;
 *   count CASE N       run one case once with N operations (for
 *                      callgrind: instructions per operation are the
 *                      difference of two runs divided by the difference
 *                      of their N, so setup cancels out); CASE may also
 *                      be reference_create_0hook or _1hook (code object
 *                      creation with a constructor hook),
 *                      cpython_create_0watch or _1watch (the same with a
 *                      code watcher, 3.12+) or cpython_compile, which
 *                      compiles the files named after N, N times;
 *   hook N REPEATS     reference: ns per code object created and
 *                      destroyed with 0 and with 1 constructor hook;
 *   memory             reference: extra bytes of a code object created
 *                      with 0, 1 and 4 consumers;
 *   watch N REPEATS    CPython 3.12+: the same with 0 and 1 code
 *                      watcher;
 *   compile REPEATS F  CPython: compile each file (sources read once
 *                      before timing) REPEATS times with no watcher and,
 *                      on 3.12+, with one, alternating; the sum over the
 *                      files of each variant's minimum.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdlib.h>
#include <string.h>

#include "bench.h"

/* Under callgrind, `count` instruments only the measured region when the
   client-request header is available: the embedded interpreter's
   start-up then runs uninstrumented, several times faster.  The count is
   still the difference of two runs, so what the region adds around the
   loop cancels out. */
#if defined(__has_include)
#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND_H 1
#endif
#endif
#ifndef HAVE_CALLGRIND_H
#define HAVE_CALLGRIND_H 0
#define CALLGRIND_START_INSTRUMENTATION
#define CALLGRIND_STOP_INSTRUMENTATION
#endif

volatile uintptr_t bench_sink;

static int python_ready;

static int
ensure_python(void)
{
    if (!python_ready) {
        Py_InitializeEx(0);
        /* The stdlib has files that warn when compiled (literal `is`
           comparisons in lib2to3 test data): keep stderr quiet. */
        if (PyRun_SimpleString(
                "import warnings; warnings.simplefilter('ignore')") < 0) {
            return -1;
        }
        python_ready = 1;
    }
    return 0;
}

typedef struct {
    const bench_case *cases;
    int (*setup)(void);
    void (*teardown)(void);
    int needs_python;
} case_group;

static const case_group groups[] = {
    {base_cases, base_setup, base_teardown, 0},
    {reference_cases, reference_setup, reference_teardown, 0},
    {cpython_cases, cpython_setup, cpython_teardown, 1},
};
#define GROUP_COUNT (sizeof(groups) / sizeof(groups[0]))

static size_t
group_count(size_t g)
{
    /* The counts are not constant expressions in this unit. */
    switch (g) {
    case 0:
        return base_case_count;
    case 1:
        return reference_case_count;
    default:
        return cpython_case_count;
    }
}

static int
setup_all(int with_python)
{
    for (size_t g = 0; g < GROUP_COUNT; g++) {
        if (groups[g].needs_python && !with_python) {
            continue;
        }
        if (groups[g].needs_python && ensure_python() < 0) {
            return -1;
        }
        if (groups[g].setup() < 0) {
            fprintf(stderr, "setup of case group %zu failed\n", g);
            return -1;
        }
    }
    return 0;
}

static void
teardown_all(int with_python)
{
    for (size_t g = 0; g < GROUP_COUNT; g++) {
        if (groups[g].needs_python && !with_python) {
            continue;
        }
        groups[g].teardown();
    }
}

/* Operations that make one timed sample last about `target_ns`. */
static size_t
calibrate(bench_case_fn run, double target_ns)
{
    size_t n = 1000;
    for (;;) {
        double start = bench_now_ns();
        bench_sink += run(n);
        double spent = bench_now_ns() - start;
        if (spent >= target_ns / 4 || n >= ((size_t)1 << 40)) {
            double scaled = (double)n * target_ns / (spent > 1 ? spent : 1);
            return scaled < 1000 ? 1000 : (size_t)scaled;
        }
        n *= 2;
    }
}

static int
cmd_time(double target_us, int repeats)
{
    if (setup_all(1) < 0) {
        return 1;
    }
    size_t total = 0;
    for (size_t g = 0; g < GROUP_COUNT; g++) {
        total += group_count(g);
    }
    double *ns = calloc(total * (size_t)repeats, sizeof(double));
    size_t *n = calloc(total, sizeof(size_t));
    if (ns == NULL || n == NULL) {
        return 1;
    }
    /* Short samples, many of them: on a shared machine a sample longer
       than a scheduler time slice is almost always interrupted, and the
       minimum over many short samples is the undisturbed cost.  The
       calibration run doubles as the warm-up (page faults, branch
       predictors, clock frequency). */
    size_t k = 0;
    for (size_t g = 0; g < GROUP_COUNT; g++) {
        for (size_t c = 0; c < group_count(g); c++, k++) {
            n[k] = calibrate(groups[g].cases[c].run, target_us * 1e3);
        }
    }
    for (int r = 0; r < repeats; r++) {
        k = 0;
        for (size_t g = 0; g < GROUP_COUNT; g++) {
            for (size_t c = 0; c < group_count(g); c++, k++) {
                double start = bench_now_ns();
                bench_sink += groups[g].cases[c].run(n[k]);
                ns[k * (size_t)repeats + (size_t)r] =
                    (bench_now_ns() - start) / (double)n[k];
            }
        }
    }
    printf("{\"repeats\": %d, \"iterations\": {", repeats);
    k = 0;
    for (size_t g = 0; g < GROUP_COUNT; g++) {
        for (size_t c = 0; c < group_count(g); c++, k++) {
            printf("%s\"%s\": %zu", k ? ", " : "", groups[g].cases[c].name,
                   n[k]);
        }
    }
    printf("}, \"cases\": {");
    k = 0;
    for (size_t g = 0; g < GROUP_COUNT; g++) {
        for (size_t c = 0; c < group_count(g); c++, k++) {
            printf("%s\"%s\": [", k ? ", " : "", groups[g].cases[c].name);
            for (int r = 0; r < repeats; r++) {
                printf("%s%.4f", r ? ", " : "",
                       ns[k * (size_t)repeats + (size_t)r]);
            }
            printf("]");
        }
    }
    printf("}}\n");
    free(ns);
    free(n);
    teardown_all(1);
    return 0;
}

static void
print_list(const double *values, int count)
{
    printf("[");
    for (int i = 0; i < count; i++) {
        printf("%s%.4f", i ? ", " : "", values[i]);
    }
    printf("]");
}

/* ns per code object with 0 and with 1 hook (or watcher), measured
   by `measure`, interleaved within each repeat so that a slow phase of
   the machine hits both; printed as {"0": [...], "1": [...]}.  Returns
   0, or -1 (nothing printed) when a measurement fails. */
static int
print_interleaved(size_t n, int repeats,
                  int (*measure)(size_t n, int with, double *ns_per_code))
{
    double *ns = calloc(2 * (size_t)repeats, sizeof(double));
    if (ns == NULL) {
        return -1;
    }
    for (int r = 0; r < repeats; r++) {
        for (int with = 0; with <= 1; with++) {
            if (measure(n, with, &ns[with * repeats + r]) < 0) {
                free(ns);
                return -1;
            }
        }
    }
    printf("{\"0\": ");
    print_list(ns, repeats);
    printf(", \"1\": ");
    print_list(ns + repeats, repeats);
    printf("}");
    free(ns);
    return 0;
}

static int
cmd_hook(size_t n, int repeats)
{
    printf("{\"iterations\": %zu, \"ns_per_code\": ", n);
    if (print_interleaved(n, repeats, reference_hook_ns) < 0) {
        return 1;
    }
    printf("}\n");
    return 0;
}

static void
print_count(const char *name, size_t n)
{
    printf("{\"case\": \"%s\", \"iterations\": %zu, "
           "\"instrumented_region\": %s}\n",
           name, n, HAVE_CALLGRIND_H ? "true" : "false");
}

static char *read_file(const char *path);

/* The contents of every file, or NULL (said on stderr) if one cannot be
   read. */
static char **
read_files(char **paths, int count)
{
    char **sources = calloc((size_t)count, sizeof(char *));
    if (sources == NULL) {
        return NULL;
    }
    for (int f = 0; f < count; f++) {
        sources[f] = read_file(paths[f]);
        if (sources[f] == NULL) {
            fprintf(stderr, "cannot read %s\n", paths[f]);
            return NULL;
        }
    }
    return sources;
}

/* compile() of the files, n times, instrumented; the files are compiled
   once before, uninstrumented, to warm up and count the code objects. */
static int
count_compile(size_t n, char **paths, int count)
{
    if (ensure_python() < 0) {
        return 1;
    }
    char **sources = read_files(paths, count);
    if (sources == NULL) {
        return 1;
    }
    double ns;
    long codes = 0;
    if (cpython_compile(sources, paths, count, 0, &ns, &codes, NULL) < 0) {
        return 1;
    }
    int rc = 0;
    CALLGRIND_START_INSTRUMENTATION;
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = cpython_compile(sources, paths, count, 0, &ns, NULL, NULL);
    }
    CALLGRIND_STOP_INSTRUMENTATION;
    for (int f = 0; f < count; f++) {
        free(sources[f]);
    }
    free(sources);
    if (rc < 0) {
        return 1;
    }
    printf("{\"case\": \"cpython_compile\", \"iterations\": %zu, "
           "\"instrumented_region\": %s, \"code_objects\": %ld}\n",
           n, HAVE_CALLGRIND_H ? "true" : "false", codes);
    return 0;
}

static int
cmd_count(const char *name, size_t n, char **paths, int count)
{
    if (strcmp(name, "cpython_compile") == 0) {
        return count_compile(n, paths, count);
    }
    /* Code object creation with 0 or 1 code watcher (3.12+) or
       constructor hook. */
    static const struct {
        const char *name;
        int (*measure)(size_t n, int with, double *ns_per_code);
        int with;
        int needs_python;
        const char *unavailable; /* said when `measure` fails */
    } creations[] = {
        {"cpython_create_0watch", cpython_watch_ns, 0, 1,
         "no code watchers in this CPython"},
        {"cpython_create_1watch", cpython_watch_ns, 1, 1,
         "no code watchers in this CPython"},
        {"reference_create_0hook", reference_hook_ns, 0, 0, NULL},
        {"reference_create_1hook", reference_hook_ns, 1, 0, NULL},
    };
    for (size_t k = 0; k < sizeof(creations) / sizeof(creations[0]); k++) {
        double ns;
        if (strcmp(name, creations[k].name) != 0) {
            continue;
        }
        if (creations[k].needs_python && ensure_python() < 0) {
            return 1;
        }
        CALLGRIND_START_INSTRUMENTATION;
        int rc = creations[k].measure(n, creations[k].with, &ns);
        CALLGRIND_STOP_INSTRUMENTATION;
        if (rc < 0) {
            if (creations[k].unavailable != NULL) {
                fprintf(stderr, "%s\n", creations[k].unavailable);
            }
            return 1;
        }
        print_count(name, n);
        return 0;
    }
    for (size_t g = 0; g < GROUP_COUNT; g++) {
        for (size_t c = 0; c < group_count(g); c++) {
            if (strcmp(groups[g].cases[c].name, name) != 0) {
                continue;
            }
            /* Set up only what the case needs: under callgrind the
               embedded interpreter's start-up is slow (its cost cancels
               out, but time matters). */
            if (groups[g].needs_python && ensure_python() < 0) {
                return 1;
            }
            if (groups[g].setup() < 0) {
                return 1;
            }
            CALLGRIND_START_INSTRUMENTATION;
            bench_sink += groups[g].cases[c].run(n);
            CALLGRIND_STOP_INSTRUMENTATION;
            groups[g].teardown();
            print_count(name, n);
            return 0;
        }
    }
    fprintf(stderr, "unknown case %s\n", name);
    return 2;
}

static int
cmd_memory(void)
{
    static const int consumers[] = {0, 1, 4};
    printf("{\"reference\": [");
    for (size_t i = 0; i < 3; i++) {
        long extra, size;
        if (reference_memory(consumers[i], &extra, &size) < 0) {
            return 1;
        }
        printf("%s{\"consumers\": %d, \"extra_bytes\": %ld, "
               "\"sizeof\": %ld}",
               i ? ", " : "", consumers[i], extra, size);
    }
    printf("]}\n");
    return 0;
}

static int
cmd_watch(size_t n, int repeats)
{
    if (ensure_python() < 0) {
        return 1;
    }
    double warm;
    /* Warm-up: the first PyCode_NewEmpty calls fill free lists. */
    if (cpython_watch_ns(n / 4 + 1, 0, &warm) < 0) {
        printf("{\"available\": false}\n");
        return 0;
    }
    printf("{\"available\": true, \"iterations\": %zu, \"ns_per_code\": ", n);
    if (print_interleaved(n, repeats, cpython_watch_ns) < 0) {
        return 1;
    }
    printf("}\n");
    return 0;
}

static char *
read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)size + 1);
    if (buf != NULL && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        free(buf);
        buf = NULL;
    }
    if (buf != NULL) {
        buf[size] = '\0';
    }
    fclose(f);
    return buf;
}

static int
cmd_compile(int repeats, char **paths, int count)
{
    if (ensure_python() < 0) {
        return 1;
    }
    int variants = PY_VERSION_HEX >= 0x030C0000 ? 2 : 1;
    char **sources = read_files(paths, count);
    double *best = calloc((size_t)count * 2, sizeof(double));
    if (sources == NULL || best == NULL) {
        return 1;
    }
    long codes = 0, failed = 0;
    for (int f = 0; f < count; f++) {
        double ns;
        long c = 0, x = 0;
        /* Warm-up compile, which also counts the code objects. */
        if (cpython_compile(&sources[f], &paths[f], 1, 0, &ns, &c, &x) < 0) {
            return 1;
        }
        codes += c;
        failed += x;
        /* Per file, the variants alternate and the minimum is kept:
           one sample lasts milliseconds, so most are not interrupted. */
        for (int r = 0; r < repeats; r++) {
            for (int w = 0; w < variants; w++) {
                if (cpython_compile(&sources[f], &paths[f], 1, w, &ns, NULL,
                                    NULL) < 0) {
                    return 1;
                }
                double *slot = &best[2 * f + w];
                if (r == 0 || ns < *slot) {
                    *slot = ns;
                }
            }
        }
    }
    double total[2] = {0.0, 0.0};
    for (int f = 0; f < count; f++) {
        total[0] += best[2 * f];
        total[1] += best[2 * f + 1];
    }
    printf("{\"files\": %d, \"failed\": %ld, \"code_objects\": %ld, "
           "\"repeats\": %d, \"ns_min_sum\": {\"0\": %.0f",
           count, failed, codes, repeats, total[0]);
    if (variants == 2) {
        printf(", \"1\": %.0f", total[1]);
    }
    printf("}}\n");
    for (int f = 0; f < count; f++) {
        free(sources[f]);
    }
    free(sources);
    free(best);
    return 0;
}

static void
usage(void)
{
    fprintf(stderr, "usage: bench time US REPEATS | count CASE N [FILE...] | "
                    "hook N REPEATS"
                    " | memory | watch N REPEATS | compile REPEATS FILE...\n");
}

int
main(int argc, char **argv)
{
    int rc;
    if (argc >= 4 && strcmp(argv[1], "time") == 0) {
        rc = cmd_time(atof(argv[2]), atoi(argv[3]));
    } else if (argc >= 4 && strcmp(argv[1], "count") == 0) {
        rc =
            cmd_count(argv[2], strtoul(argv[3], NULL, 10), argv + 4, argc - 4);
    } else if (argc == 4 && strcmp(argv[1], "hook") == 0) {
        rc = cmd_hook(strtoul(argv[2], NULL, 10), atoi(argv[3]));
    } else if (argc == 2 && strcmp(argv[1], "memory") == 0) {
        rc = cmd_memory();
    } else if (argc == 4 && strcmp(argv[1], "watch") == 0) {
        rc = cmd_watch(strtoul(argv[2], NULL, 10), atoi(argv[3]));
    } else if (argc >= 4 && strcmp(argv[1], "compile") == 0) {
        rc = cmd_compile(atoi(argv[2]), argv + 3, argc - 3);
    } else {
        usage();
        return 2;
    }
    fflush(stdout);
    if (python_ready && Py_FinalizeEx() < 0) {
        return 120;
    }
    return rc;
}
