# Data files run by the interpreter under test (worker.py, the C source);
# nothing here is imported by the host.
