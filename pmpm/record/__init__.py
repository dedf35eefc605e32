"""What an environment is: the record, its id, lock files, verification, pinning.

This package imports nothing itself: import its modules.
"""
