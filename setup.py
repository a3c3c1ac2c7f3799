# Thin shim: all metadata lives in pyproject.toml (nbdev 3 reads it too).
from setuptools import setup
setup()
