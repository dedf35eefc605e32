"""The environment on disk: layout, locks, journal, transaction, no-op state, inventory.

This package imports nothing itself: import its modules.
"""
