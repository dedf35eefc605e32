"""The host: CPU target, compilers, tools and MPI that builds are tuned for.

This package imports nothing itself: import its modules.
"""
