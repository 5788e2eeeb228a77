"""``forgather``: the command line. This module only parses and dispatches.

    forgather ls -r                                   # every project below here
    forgather -p examples/tutorials/project_composition pp
    forgather -t 4_dynamic_args.yaml pp --greeting hi # an option the config declares
    forgather -t default.yaml --set main.count=3 construct
    forgather graph --format mermaid -o graph.md
    forgather -i                                      # interactive shell

:func:`main` reads the global options up to the command name, then hands the
command name and its arguments to :func:`forgather.cli.dispatch.run_command`
(or, with ``-i``, starts :mod:`forgather.cli.shell`, which hands it each line).
It is the one function of the CLI that reads ``sys.argv`` (besides the
``__main__`` lines of the two modules that are programs of their own,
``inference.py`` and ``loopback_torchrun.py``); everything below takes its
arguments as a list (tests/cli/test_main.py checks).

The command table is :mod:`forgather.cli.registry`; adding a command is
described there and in docs/cli.md ("Adding a command").

Decision a reader may question: parsing happens in two steps. The global
parser reads options up to the command name; the command's module is imported
and its parser built only then (``dispatch.py``). So ``forgather --help``
imports no command module (only this module and the registry), and a
config-aware command can load the config first and add the config's
``dynamic_args`` to its own parser (and to its ``--help``).
"""

from __future__ import annotations

import argparse
import sys

from forgather.cli.registry import COMMANDS, add_common_options, command_listing


def build_parser() -> argparse.ArgumentParser:
    """The global parser: options, then a command name and its raw arguments."""
    parser = argparse.ArgumentParser(
        prog="forgather",
        description="Explore, build and run Forgather projects.",
        epilog=f"commands:\n{command_listing()}\n\n"
        "'forgather COMMAND --help' shows a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # see dispatch.py
    )
    add_common_options(parser)
    parser.add_argument(
        "--traceback", action="store_true", help="show the Python traceback of errors"
    )
    parser.add_argument("-i", "--interactive", action="store_true", help="interactive shell")
    parser.add_argument("command", nargs="?", metavar="COMMAND", choices=COMMANDS)
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``forgather`` (and of ``python -m forgather``, ``python -m forgather.cli``).

    Args:
        argv: the words after ``forgather``; ``None`` reads this process's
            command line (``sys.argv[1:]``).

    Returns:
        The exit code: 0 ok, 1 user error, 2 usage error.
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # argparse's REMAINDER swallows a "--" right after the command name; keep
    # everything from the first "--" for the command's own parser (train -- ...).
    tail = argv[argv.index("--") :] if "--" in argv else []
    try:
        options = parser.parse_args(argv[: len(argv) - len(tail)])
        if options.command is None and not options.interactive:
            parser.error("a command is required (see forgather --help)")  # exits 2
    except SystemExit as exit_:
        return int(exit_.code or 0)
    options.args = [*options.args, *tail]
    if options.interactive:
        from forgather.cli.shell import run_shell

        return run_shell(options, run_line=main)
    from forgather.cli.dispatch import run_command

    return run_command(options, options.command, options.args)
