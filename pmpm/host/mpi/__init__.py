"""The MPI compiled packages build against: choice, discovery, probing.

This package imports nothing itself: import its modules.
"""
