"""The ``wulian`` command's entry point (``[project.scripts]``).

Importing the command line takes about a second (pandas, the solvers' bindings, SQLAlchemy).
Ctrl-C in that second would print Python's traceback of the import; here it ends the command
as Ctrl-C does later (``wulian.api.cli.main``): one bilingual line and the shell's code for an
interrupted process. Nothing has started, so nothing can have been recorded.
"""

import sys

INTERRUPTED = 130  # the shell's code for a process stopped by SIGINT (128 + 2)


def main() -> int:
    try:
        from wulian.api.cli import main as run_command
    except KeyboardInterrupt:
        sys.stderr.write("\n已中断 / interrupted\n")
        return INTERRUPTED
    return run_command()
