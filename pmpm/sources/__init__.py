"""Recipe sources: fetched, identified by content, cached, extracted.

This package imports nothing itself: import its modules.
"""
