"""Build hook: cffi compiles the extension module declared here."""

from setuptools import setup

setup(cffi_modules=["coextra_build.py:ffibuilder"])
