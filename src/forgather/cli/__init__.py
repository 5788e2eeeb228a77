"""The ``forgather`` command line (entry point ``forgather.cli:main``).

:mod:`forgather.cli.main` is the entry point, :mod:`forgather.cli.registry` the
command table (and how to add a command), :mod:`forgather.cli.dispatch` runs
one command.
"""

from forgather.cli.main import main

__all__ = ["main"]
