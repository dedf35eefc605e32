"""The compile stage: recipes, build inputs, plan, execution, packing, binary cache.

This package imports nothing itself: import its modules.
"""
