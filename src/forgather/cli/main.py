"""``forgather``: the command line. This module only parses and dispatches.

    forgather ls -r                                   # every project below here
    forgather -p examples/tutorials/project_composition pp
    forgather -t 4_dynamic_args.yaml pp --greeting hi # an option the config declares
    forgather -t default.yaml --set main.count=3 construct
    forgather graph --format mermaid -o graph.md
    forgather -i                                      # interactive shell

Adding a command: write a module ``forgather/cli/<group>.py`` that defines
``COMMANDS = {"name": Command(run=..., add_arguments=..., uses_config=...)}``
(see :mod:`forgather.cli.command`) and register each name in the table
``COMMANDS`` below as ``"name": ("forgather.cli.<group>", "one-line help")``.
Nothing else changes: ``--help``, the interactive shell and its completion
read the table. Import heavy packages (torch, transformers) inside ``run``,
never at module level.

Decision a reader may question: parsing happens in two steps. The global
parser reads options up to the command name; the command's module is imported
and its parser built only then. So ``forgather --help`` imports no command
module, and a config-aware command can load the config first and add the
config's ``dynamic_args`` to its own parser (and to its ``--help``).

No parser accepts abbreviated options (``allow_abbrev=False``): the options
after a command name are read by two parsers, and an abbreviation one of them
understands (``--out`` for the global ``--output``) would steal a command's
own option of that name (``plot --out``).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module defining it, one-line help). Keep in the order users learn them.
COMMANDS: dict[str, tuple[str, str]] = {
    "ls": ("forgather.cli.listing", "list the project's configs (-r: every project below)"),
    "index": ("forgather.cli.listing", "project overview as Markdown"),
    "meta": ("forgather.cli.listing", "resolved meta.yaml values and template search path"),
    "tlist": ("forgather.cli.listing", "every template on the search path, by directory"),
    "pp": ("forgather.cli.show", "the config's rendered YAML"),
    "trefs": ("forgather.cli.show", "templates the config extends, includes and imports"),
    "targets": ("forgather.cli.show", "the config's buildable targets"),
    "diff": ("forgather.cli.show", "unified diff of two configs' rendered YAML"),
    "code": ("forgather.cli.build", "Python source that builds a target"),
    "construct": ("forgather.cli.build", "build a target and print the object"),
    "check": ("forgather.cli.build", "check SPECs and call arguments without building"),
    "graph": ("forgather.cli.build", "the node graph as Graphviz DOT, SVG or Mermaid"),
    "ws": ("forgather.cli.workspace", "create a workspace (ws init) or a project (ws project)"),
    "model": ("forgather.cli.model", "build a model config and show it (construct) or train a few steps (test)"),
    "train": ("forgather.cli.train", "train: in this process, or on several with torchrun"),
    "tb": ("forgather.cli.train", "TensorBoard on the config's runs"),
    "plot": ("forgather.cli.train", "plot a run's loss and learning-rate curves"),
    "checkpoint": ("forgather.cli.train", "list checkpoints, or link the newest into the model dir"),
    "dataset": ("forgather.cli.data", "split sizes, decoded examples and token-length histograms"),
    "tokenizer": ("forgather.cli.data", "train a byte-level BPE tokenizer on local text"),
    "inf": ("forgather.cli.inference", "serve a model (OpenAI-compatible API), or talk to one"),
    "control": ("forgather.cli.control", "list, inspect, save, stop or abort running training jobs"),
}

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def _add_common_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Options accepted both before and after the command name."""
    parser.add_argument(
        "-p", "--project-dir", dest=prefix + "project_dir", metavar="DIR", help="project directory"
    )
    parser.add_argument(
        "-t",
        "--config-template",
        dest=prefix + "config_template",
        metavar="CONFIG",
        help="config name (default: the project's default_config)",
    )
    parser.add_argument(
        "-D",
        dest=prefix + "defines",
        action="append",
        metavar="NAME=VALUE",
        help="template variable (value parsed as YAML); repeatable",
    )
    parser.add_argument(
        "--set",
        dest=prefix + "sets",
        action="append",
        metavar="PATH=VALUE",
        help="override a config value after loading, e.g. main.args.0=1; repeatable",
    )
    parser.add_argument(
        "-o", "--output", dest=prefix + "output", metavar="FILE", help="write output to FILE"
    )


def build_parser() -> argparse.ArgumentParser:
    """The global parser: options, then a command name and its raw arguments."""
    width = max(map(len, COMMANDS)) + 2
    listing = "\n".join(f"  {name:<{width}}{text}" for name, (_, text) in COMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="forgather",
        description="Explore, build and run Forgather projects.",
        epilog=f"commands:\n{listing}\n\n'forgather COMMAND --help' shows a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    _add_common_options(parser)
    parser.add_argument(
        "--traceback", action="store_true", help="show the Python traceback of errors"
    )
    parser.add_argument("-i", "--interactive", action="store_true", help="interactive shell")
    parser.add_argument("command", nargs="?", metavar="COMMAND", choices=COMMANDS)
    parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``forgather``.

    Returns:
        The exit code: 0 ok, 1 user error, 2 usage error.
    """
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    # argparse's REMAINDER swallows a "--" right after the command name; keep
    # everything from the first "--" for the command's own parser (train -- ...).
    tail = argv[argv.index("--") :] if "--" in argv else []
    try:
        args = parser.parse_args(argv[: len(argv) - len(tail)])
    except SystemExit as exit_:
        return int(exit_.code or 0)
    args.args = [*args.args, *tail]
    if args.interactive:
        from forgather.cli.shell import run_shell

        return run_shell(args)
    if args.command is None:
        parser.print_usage(sys.stderr)
        print("forgather: error: a command is required (see forgather --help)", file=sys.stderr)
        return EXIT_USAGE
    return run_command(args, args.command, args.args)


def run_command(global_args: argparse.Namespace, name: str, argv: list[str]) -> int:
    """Run one command; print errors as one message (``--traceback``: the traceback).

    Args:
        global_args: the parsed global options.
        name: the command name (a key of ``COMMANDS``).
        argv: the command's own arguments.

    Returns:
        The exit code.
    """
    try:
        return _dispatch(global_args, name, argv)
    except SystemExit as exit_:  # argparse: --help (0) or usage error (2)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print("forgather: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        from forgather.cli.errors import report_error

        report_error(err, show_traceback=global_args.traceback)
        return EXIT_ERROR


def _dispatch(global_args: argparse.Namespace, name: str, argv: list[str]) -> int:
    from forgather.cli.context import CommandContext, parse_assignments

    module_name, help_text = COMMANDS[name]
    command = importlib.import_module(module_name).COMMANDS[name]
    parser = argparse.ArgumentParser(
        prog=f"forgather {name}",
        description=f"{help_text}.\n\n{command.description}".strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    command.add_arguments(parser)
    _add_common_options(parser.add_argument_group("common options"), prefix="cmd_")

    # Options after the command name that decide how the config loads.
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    _add_common_options(early, prefix="cmd_")
    pre, _ = early.parse_known_args(argv)
    ctx = CommandContext(
        project_dir=pre.cmd_project_dir or global_args.project_dir or ".",
        config_template=pre.cmd_config_template or global_args.config_template,
        template_vars=dict(
            parse_assignments((global_args.defines or []) + (pre.cmd_defines or []), "-D")
        ),
        overrides=parse_assignments((global_args.sets or []) + (pre.cmd_sets or []), "--set"),
        output=pre.cmd_output or global_args.output,
        argv=[*_global_words(global_args), name, *argv],
    )
    dests = _add_config_options(ctx, parser, argv) if command.uses_config else []
    args = parser.parse_args(argv)
    if dests:
        from forgather.cli.dynamic_args import dynamic_values

        values = dynamic_values(args, dests)
        if values:
            ctx.reload_config(**values)
    return command.run(ctx, args) or EXIT_OK


def _global_words(global_args: argparse.Namespace) -> list[str]:
    """The global options of ``global_args`` as command-line words (for a command's ``argv``)."""
    words: list[str] = []
    for flag, value in (("-p", global_args.project_dir), ("-t", global_args.config_template),
                        ("-o", global_args.output)):  # fmt: skip
        if value is not None:
            words += [flag, value]
    words += [w for item in global_args.defines or () for w in ("-D", item)]
    words += [w for item in global_args.sets or () for w in ("--set", item)]
    return words + (["--traceback"] if global_args.traceback else [])


def _add_config_options(ctx, parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Load the config and add its ``dynamic_args`` to ``parser``; return their dests."""
    from forgather.cli.dynamic_args import add_dynamic_args, normalize_specs

    try:
        config = ctx.config
        specs = config.build("dynamic_args") if "dynamic_args" in config.targets else None
    except Exception as err:
        if "-h" in argv or "--help" in argv:  # still show the command's own options
            first_line = str(err).splitlines()[0] if str(err) else type(err).__name__
            parser.epilog = f"(the config's own options are unavailable: {first_line})"
            return []
        raise
    return add_dynamic_args(parser, normalize_specs(specs))
