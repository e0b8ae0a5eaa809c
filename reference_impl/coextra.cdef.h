/*
 * coextra.cdef.h -- what the cffi extension module exposes to Python.
 *
 * Python reaches the reference only through the suite's C ABI table
 * (coextra_abi.h), so the module exports the table's address, plus the
 * live heap block counter that the leak tests read.  Read by
 * coextra_build.py.
 */
typedef struct coextra_table coextra_table;

const coextra_table *coextra_get_table(void);
intptr_t coextra_live_blocks(void);
