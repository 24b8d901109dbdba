"""Helpers every stage of kerasae uses: staged writes, names, versions, errors, lazy exports.

Standard library and numpy only, so that importing them costs nothing.
"""
