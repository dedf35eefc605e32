"""Publishing an environment: activation scripts, modulefiles, Jupyter kernels.

This package imports nothing itself: import its modules.
"""
