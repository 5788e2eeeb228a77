"""Run one command: its parser, its context, its exit code. The one place a
command is run, whether it came from ``forgather`` or from a line of the shell.

    run_command(global_options, "pp", ["--greeting", "hi"])   # -> 0

Steps, in order: import the command's module (:func:`registry.load_command`);
build its parser (its own options, then the common ones); read the common
options given after the command name and merge them with the global ones into
a :class:`~forgather.cli.context.CommandContext`; for a command with
``uses_config`` (unless ``--no-dyn``), load the config and add its
``dynamic_args`` as options (an option the command has too passes to the
config's spec, :mod:`forgather.cli.dynamic_args`); parse the command's
arguments; render the config again with the dynamic values; run; with
``-e``, open the output in the editor. Any failure becomes one message and an exit code
(:mod:`forgather.cli.errors`).

Decision a reader may question: the command's arguments are read by two
parsers. A small "early" parser reads only the common options (``-t`` after
the command name must decide which config loads), then the command's full
parser, which only exists once the config has added its options, reads them
all. No parser accepts abbreviated options (``allow_abbrev=False``): an
abbreviation one parser understands (``--out`` for the common ``--output``)
would steal a command's own option of that name (``plot --out``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from forgather.cli.command import Command
from forgather.cli.context import CommandContext, parse_assignments
from forgather.cli.errors import EXIT_ERROR, EXIT_OK, EXIT_USAGE, CLIError, UsageError, report_error
from forgather.cli.registry import (
    COMMANDS,
    READS_NO_CONFIG,
    add_common_options,
    assignment_words,
    load_command,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing
if TYPE_CHECKING:
    from forgather.cli.dynamic_args import DynamicOptions

TRUST_VARIABLE = "FORGATHER_TRUST"  # read by forgather.config.policy (not imported here: startup)


def run_command(global_options: argparse.Namespace, name: str, argv: list[str]) -> int:
    """Run one command; print errors as one message (``--traceback``: the traceback).

    Args:
        global_options: the options given before the command name (the
            namespace ``main.build_parser()`` parses).
        name: the command name (a key of ``registry.COMMANDS``).
        argv: the command's own arguments.

    Returns:
        The exit code: 0 ok, 1 user error, 2 usage error, 130 interrupted.
    """
    try:
        return _run(global_options, name, argv)
    except SystemExit as exit_:  # argparse: --help (0) or usage error (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print("forgather: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `forgather pp | head`: the reader left; nothing to report
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the final flush must not fail again
        return 128 + 13  # as a process killed by SIGPIPE
    except Exception as err:
        report_error(err, show_traceback=global_options.traceback)
        return EXIT_USAGE if isinstance(err, UsageError) else EXIT_ERROR


def _run(global_options: argparse.Namespace, name: str, argv: list[str]) -> int:
    with _trust(global_options, argv):
        return _run_command(global_options, name, argv)


@contextlib.contextmanager
def _trust(global_options: argparse.Namespace, argv: list[str]):
    """With ``--trust`` (before or after the command name): FORGATHER_TRUST=1 while it runs.

    The environment carries it to every Project and ConfigEnvironment the
    command opens and to the ranks ``train --nproc`` starts; it is restored
    afterwards, so one trusted line of the interactive shell trusts nothing else.
    """
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    early.add_argument("--trust", action="store_true")
    trusted = global_options.trust or early.parse_known_args(argv)[0].trust
    before = os.environ.get(TRUST_VARIABLE)
    if trusted:
        os.environ[TRUST_VARIABLE] = "1"
    try:
        yield
    finally:
        if trusted:
            if before is None:
                os.environ.pop(TRUST_VARIABLE, None)
            else:
                os.environ[TRUST_VARIABLE] = before


def _run_command(global_options: argparse.Namespace, name: str, argv: list[str]) -> int:
    command = load_command(name)
    parser = argparse.ArgumentParser(
        prog=f"forgather {name}",
        description=f"{COMMANDS[name][1]}.\n\n{command.description}".strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    command.add_arguments(parser)
    reads_config = name not in READS_NO_CONFIG
    if reads_config:
        add_common_options(parser.add_argument_group("common options"), prefix="cmd_")
    ctx = _context(global_options, name, argv, read_common=reads_config)
    if not reads_config:
        ctx.refuse_config_options(name, hint=READS_NO_CONFIG[name])
    if command.cached_output:
        from forgather.cli import pp_cache

        if pp_cache.usable(ctx, argv):
            return pp_cache.run_cached(ctx, lambda: _run_parsed(command, parser, ctx, argv))
    return _run_parsed(command, parser, ctx, argv)


def _run_parsed(command: Command, parser: argparse.ArgumentParser, ctx: CommandContext,
                argv: list[str]) -> int:  # fmt: skip
    """The rest of a command's run once its context exists: config options, parse, run."""
    options = None
    if command.uses_config and not ctx.no_dyn:
        options = _add_config_options(ctx, command, parser, argv)
    args = parser.parse_intermixed_args(argv) if command.intermixed else parser.parse_args(argv)
    if options is not None:
        values = options.values(args)
        ctx.dynamic_args = values
        if values:
            ctx.reload_config(**values)
    code = command.run(ctx, args) or EXIT_OK
    ctx.close()  # -e: the editor opens once the output is complete
    return code


def _context(global_options: argparse.Namespace, name: str, argv: list[str],
             read_common: bool = True) -> CommandContext:  # fmt: skip
    """The context of command ``name``: common options after its name win over global ones.

    ``read_common=False``: the command's arguments are all its own (``READS_NO_CONFIG``).
    """
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    add_common_options(early, prefix="cmd_")
    cmd, _ = early.parse_known_args(argv if read_common else [])
    g = global_options
    return CommandContext(
        project_dir=cmd.cmd_project_dir or g.project_dir or ".",
        config_template=cmd.cmd_config_template or g.config_template,
        template_vars=dict(parse_assignments((g.defines or []) + (cmd.cmd_defines or []), "-D")),
        overrides=parse_assignments((g.sets or []) + (cmd.cmd_sets or []), "--set"),
        output=cmd.cmd_output or g.output,
        argv=[*_global_words(g), name, *argv],
        command=name,
        edit=g.edit or cmd.cmd_edit,
        no_dyn=g.no_dyn or cmd.cmd_no_dyn,
    )


def _global_words(global_options: argparse.Namespace) -> list[str]:
    """The global options as command-line words (for the context's ``argv``)."""
    words: list[str] = []
    for flag, value in (("-p", global_options.project_dir), ("-t", global_options.config_template),
                        ("-o", global_options.output)):  # fmt: skip
        if value is not None:
            words += [flag, value]
    words += assignment_words(global_options.defines, global_options.sets)
    words += ["--no-dyn"] if global_options.no_dyn else []
    return words + (["--traceback"] if global_options.traceback else [])


def _add_config_options(ctx: CommandContext, command: Command, parser: argparse.ArgumentParser,
                        argv: list[str]) -> DynamicOptions | None:  # fmt: skip
    """Load the config and add its ``dynamic_args`` to ``parser``."""
    from forgather.cli.dynamic_args import add_dynamic_args, normalize_specs
    from forgather.config import ConfigError

    try:
        config = ctx.config
        if "dynamic_args" not in config.targets:
            return None
        specs = config.build_data("dynamic_args")
        try:
            return add_dynamic_args(parser, normalize_specs(specs))
        except CLIError as err:  # a bad spec: say where the config declares them
            raise ConfigError(str(err), _location(config, "dynamic_args")) from None
    except Exception as err:
        if "-h" in argv or "--help" in argv:  # still show the command's own options
            first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
            parser.epilog = f"(the config's own options are unavailable: {first_line})"
            return None
        if command.on_config_error is not None:
            known, _ = parser.parse_known_args(argv)
            command.on_config_error(ctx, known)
        raise


def _location(config, path: str):
    """The template line that set ``path`` in ``config``, or None."""
    from forgather.config import ConfigError

    try:
        return config.why(path).location
    except ConfigError:
        return None
