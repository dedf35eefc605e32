"""The environment file: read, checked and typed (the first stage).

This package imports nothing itself: import its modules.
"""
