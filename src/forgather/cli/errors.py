"""The CLI's errors and how a failed command is reported: one clear message, no traceback.

:class:`CLIError` is the one exception the CLI's own modules raise for a user
mistake; it lives here, apart from the command contract (``command.py``) and
the command context (``context.py``), so that every CLI module can raise it
without importing either.

Three kinds of failure reach :func:`report_error`:

* a mistake in the config (``ConfigError``): its message already names the
  template file:line, shows the line and the chain of templates;
* a mistake on the command line (``CLIError``, ``OSError`` for ``-o``...);
* an exception raised by user code while a target was built: it keeps its own
  type, and the notes the builder added name the config path and template
  file:line, so they are printed under the message.

Decision a reader may question: even unexpected exceptions are printed as one
message (with a hint to rerun with ``--traceback``) rather than as a
traceback; most of them come from user code called by a config, where config
machinery frames would bury the one line that matters.
"""

from __future__ import annotations

import sys

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2  # ok, a user mistake, a usage error (argparse exits 2)


class CLIError(Exception):
    """A user mistake the CLI reports in one line and exit code 1."""


class UsageError(CLIError):
    """A malformed option value (``-D name`` without ``=VALUE``): one line and exit code 2."""


def format_error(err: BaseException) -> str:
    """The message printed for ``err`` (without the ``forgather: error:`` prefix)."""
    from forgather.config import ConfigError

    if isinstance(err, CLIError | ConfigError):
        return str(err)
    if isinstance(err, OSError) and err.filename:
        return f"{err.strerror or err}: {err.filename}"
    lines = [f"{type(err).__name__}: {err}"]
    lines += [f"  {note}" for note in getattr(err, "__notes__", ())]
    lines.append("(run with --traceback to see where it came from)")
    return "\n".join(lines)


def report_error(err: BaseException, show_traceback: bool = False) -> None:
    """Print ``err`` to stderr, as a traceback only when ``show_traceback``."""
    if show_traceback:
        import traceback  # only here: a command that succeeds never needs it

        traceback.print_exception(err)
        return
    print(f"forgather: error: {format_error(err)}", file=sys.stderr)
