"""Independent formulations that tests and benchmarks check wulian against.

Plain PuLP models written from each problem's definition (the weekly allocation, the volunteer
matching, the generalised assignment problem), kept out of the installed package: they are the
yardstick, not the engine. The repository's root must be on ``sys.path`` (pytest's
``pythonpath`` setting and ``python -m bench`` from the root both do that).
"""
