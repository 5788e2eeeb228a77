"""The ``forgather`` command line (entry point ``forgather.cli:main``).

See :mod:`forgather.cli.main` for the command table and how to add a command.
"""

from forgather.cli.main import main

__all__ = ["main"]
