"""The conda stage: channels, solving and installing with py-rattler, conda-meta, pip.

This package imports nothing itself: import its modules.
"""
