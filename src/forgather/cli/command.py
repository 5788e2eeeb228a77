"""What a command is: the small contract between ``dispatch.py`` and command modules.

A command module defines ``COMMANDS``, a dict from command name to
:class:`Command`. ``add_arguments`` fills the command's own argparse parser;
``run`` receives the :class:`~forgather.cli.context.CommandContext` (global
options, the project and config, loaded on first use) and the parsed
arguments, writes its output through ``ctx.emit`` and returns an exit code
(``None`` means 0).

Decision a reader may question: ``uses_config`` is declared per command rather
than detected: only commands that declare it load the config *before* parsing
their options, so the config's ``dynamic_args`` can become options (and appear
in ``--help``) while every other command starts without touching the config.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable

    from forgather.cli.context import CommandContext


def _no_arguments(parser: argparse.ArgumentParser) -> None:
    pass


class Command:
    """One ``forgather`` command.

    The one-line help lives in ``registry.COMMANDS`` (so ``forgather --help``
    imports no command module); ``description`` adds detail to the command's
    own ``--help``. A plain class, not a dataclass: importing ``dataclasses``
    (and the ``inspect`` it imports) would be a sixth of a cached ``pp``.

    Attributes:
        run: ``run(ctx, args) -> int | None``.
        add_arguments: adds the command's options to its parser.
        uses_config: load the config (with its dynamic args and ``--set``
            overrides) before parsing the command's options.
        description: longer text for ``forgather COMMAND --help``.
        intermixed: options may come between positional arguments
            (``control abort --force JOB``; argparse's ``parse_intermixed_args``).
        on_config_error: ``on_config_error(ctx, args)``, called with the
            command's own options when loading the config fails, before the
            error is reported (``pp -d`` prints the template sources, which
            is when they help most).
        cached_output: its printed text may be stored and replayed while no
            file it was made from changes (``pp``; :mod:`forgather.cli.pp_cache`).
            The command takes ``--no-cache``.
    """

    __slots__ = ("run", "add_arguments", "uses_config", "description", "intermixed",
                 "on_config_error", "cached_output")  # fmt: skip

    def __init__(
        self,
        run: Callable[[CommandContext, argparse.Namespace], int | None],
        add_arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments,
        uses_config: bool = False,
        description: str = "",
        intermixed: bool = False,
        on_config_error: Callable[[CommandContext, argparse.Namespace], None] | None = None,
        cached_output: bool = False,
    ):
        self.run = run
        self.add_arguments = add_arguments
        self.uses_config = uses_config
        self.description = description
        self.intermixed = intermixed
        self.on_config_error = on_config_error
        self.cached_output = cached_output

    def __repr__(self) -> str:
        return f"Command(run={getattr(self.run, '__qualname__', self.run)!r})"
