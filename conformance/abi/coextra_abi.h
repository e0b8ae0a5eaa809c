/*
 * coextra_abi.h -- the C ABI of the PEP 9999 conformance suite.
 *
 * A C, C++ or Rust library plugs into the suite by exporting one symbol,
 *
 *     const coextra_table *coextra_get_table(void);
 *
 * returning a table of function pointers.  The suite loads the library
 * with cffi (ABI mode, no compiler needed), checks abi_version and size,
 * and drives every test through the table.  The table is the Python
 * adapter contract of conformance/adapter.py expressed in C; read that
 * module's docstrings for the meaning of each operation.
 *
 * Conventions:
 *  - Functions that can fail return -1 (or NULL) and leave an error
 *    pending in the implementation; take_error() returns its exception
 *    class name ("SystemError", "RuntimeError", "ValueError",
 *    "MemoryError") and clears it.  Errors are per thread.
 *  - Objects (code objects and others) are opaque coextra_object
 *    pointers.  new_code, get_nested, copy_code and new_non_code return
 *    a new reference owned by the caller; drop releases it.
 *  - The API operations take the interpreter explicitly: it stands for
 *    the calling thread's current interpreter in the PEP's C API.
 *  - Entries for capabilities the library does not declare may be NULL.
 *
 * Versions.  abi_version holds the major version, COEXTRA_ABI_VERSION;
 * the loader refuses a table of another major version.  A minor version
 * (COEXTRA_ABI_MINOR) only appends entries at the end of the table, each
 * optional and announced by a capability bit, so that a library built
 * against an older minor version keeps loading: the table's size tells
 * the loader which entries the library has, and it treats the entries
 * beyond it as absent (NULL) and drops the capabilities that need them.
 *
 *   1.0  the table up to take_unraisable
 *   1.1  compare_exchange_extra (COEXTRA_CAP_COMPARE_EXCHANGE; Spec 2.0)
 *   1.2  live_blocks (COEXTRA_CAP_LIVE_BLOCKS)
 */
#ifndef COEXTRA_ABI_H
#define COEXTRA_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define COEXTRA_ABI_VERSION 1
/* 1: compare_exchange_extra (Spec-Version 2.0); 2: live_blocks. */
#define COEXTRA_ABI_MINOR 2

/* Capability bits, one per conformance.adapter.Capability. */
#define COEXTRA_CAP_RELEASE (1u << 0)
#define COEXTRA_CAP_INLINE_FLAG (1u << 1)
#define COEXTRA_CAP_STORAGE_SIZE (1u << 2)
#define COEXTRA_CAP_SIZEOF (1u << 3)
#define COEXTRA_CAP_HOOKS (1u << 4)
#define COEXTRA_CAP_INTERPRETERS (1u << 5)
#define COEXTRA_CAP_FINALIZE (1u << 6)
#define COEXTRA_CAP_THREADS (1u << 7)
#define COEXTRA_CAP_ALLOC_FAILURE (1u << 8)
#define COEXTRA_CAP_COPY (1u << 9)
/* ABI minor 1: the compare_exchange_extra entry is set. */
#define COEXTRA_CAP_COMPARE_EXCHANGE (1u << 10)
/* Interpreters run in parallel, each with its own lock (PEP 684). */
#define COEXTRA_CAP_OWN_GIL (1u << 11)
/* ABI minor 2: the live_blocks entry is set. */
#define COEXTRA_CAP_LIVE_BLOCKS (1u << 12)
/* end_interpreter on a session's main interpreter, with code objects
   that are never dropped, is how the library's program ends (the suite
   runs it in a child process and collects the free calls, R-FREE-13). */
#define COEXTRA_CAP_EXIT_FINALIZATION (1u << 13)

/* How copy_code copies. */
#define COEXTRA_COPY_REPLACE 0
#define COEXTRA_COPY_MARSHAL 1

/* The co_flags bit that marks inline extra storage. */
#define COEXTRA_CO_INLINE_EXTRA 0x20000000

typedef struct coextra_interp coextra_interp;
typedef struct coextra_object coextra_object;

typedef void (*coextra_freefunc)(void *value);
typedef int (*coextra_hook)(coextra_object *code, void *arg);

typedef struct coextra_table {
    uint32_t abi_version;  /* COEXTRA_ABI_VERSION */
    uint32_t size;         /* sizeof(coextra_table) */
    const char *name;      /* e.g. "reference" */
    const char *version;   /* the implementation's version */
    uint32_t capabilities; /* COEXTRA_CAP_* bits */

    /* -- object model ------------------------------------------------ */
    /* A fresh interpreter; every session starts with one. */
    coextra_interp *(*new_interpreter)(void);
    /* Finalize: free every value stored under its indices, then the
       interpreter.  Code objects it constructed stay alive while
       referenced. */
    int (*end_interpreter)(coextra_interp *interp);
    coextra_object *(*new_code)(coextra_interp *interp, int nested,
                                uint32_t flags);
    coextra_object *(*get_nested)(coextra_object *code, int i);
    coextra_object *(*copy_code)(coextra_interp *interp, coextra_object *code,
                                 int how);
    coextra_object *(*new_non_code)(coextra_interp *interp);
    void (*drop)(coextra_object *obj);
    uintptr_t (*code_id)(coextra_object *code);
    uint32_t (*co_flags)(coextra_object *code);

    /* -- the API of the PEP ------------------------------------------ */
    intptr_t (*request_index)(coextra_interp *interp, coextra_freefunc free);
    int (*release_index)(coextra_interp *interp, intptr_t index);
    int (*get_extra)(coextra_interp *interp, coextra_object *code,
                     intptr_t index, void **extra);
    int (*set_extra)(coextra_interp *interp, coextra_object *code,
                     intptr_t index, void *extra);
    int (*add_hook)(coextra_interp *interp, coextra_hook hook, void *arg);
    int (*remove_hook)(coextra_interp *interp, int hook_id);
    int (*has_inline_extra)(coextra_object *code);

    /* -- observation ------------------------------------------------- */
    intptr_t (*extra_bytes)(coextra_object *code);
    intptr_t (*sizeof_code)(coextra_object *code);
    /* Next `after` allocations succeed, then `count` fail. */
    void (*fail_allocations)(long after, long count);
    /* Copy the pending exception class name into buf, clear it, return
       1; return 0 if none is pending. */
    int (*take_error)(char *buf, size_t size);
    /* Set a pending exception of the named class (hooks use it). */
    void (*set_error)(const char *exc_class);
    /* Like take_error, for the oldest error reported as unraisable. */
    int (*take_unraisable)(char *buf, size_t size);

    /* -- ABI minor 1 (Spec-Version 2.0) ------------------------------ */
    /* PyUnstable_Code_CompareExchangeExtra: 1 if *expected matched and
       desired was stored, 0 with the current value in *expected if not,
       -1 with an error pending. */
    int (*compare_exchange_extra)(coextra_interp *interp, coextra_object *code,
                                  intptr_t index, void **expected,
                                  void *desired);

    /* -- ABI minor 2 ----------------------------------------------------- */
    /* How many heap blocks the library holds right now, over every
       interpreter and object (COEXTRA_CAP_LIVE_BLOCKS).  The suite reads
       it before a test opens its session and after the session is
       closed: any difference is memory the test's operations leaked.
       Count what the implementation allocates for its own use (and for
       its object model); a block freed later by delayed reclamation
       must be reclaimed by the time the session's last interpreter has
       ended. */
    intptr_t (*live_blocks)(void);
} coextra_table;

/* The one symbol a library exports. */
const coextra_table *coextra_get_table(void);

#ifdef __cplusplus
}
#endif

#endif /* COEXTRA_ABI_H */
