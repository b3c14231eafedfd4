"""Shells over planning/: the ``wulian`` command line (and later the HTTP service)."""
