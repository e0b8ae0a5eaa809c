/*
 * main.c -- the like-for-like harness's executable.
 *
 * CPython 3.13.15 is linked into this executable (statically, as in the
 * `python3.13` binary, with its symbols exported), and every measured
 * call comes from harness.c, a shared object linked beside it: calls
 * into CPython go through the PLT exactly as from an extension module.
 */
int lfl_main(int argc, char **argv);

int
main(int argc, char **argv)
{
    return lfl_main(argc, argv);
}
