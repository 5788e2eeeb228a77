"""Node-graph commands: ``code``, ``construct``, ``check``, ``graph``.

    forgather code                       # Python that builds `main`
    forgather construct                  # build `main` and print it
    forgather construct --var scale=2    # a !var value for the build
    forgather check                      # SPECs import, arguments match; builds nothing
    forgather graph --format svg -o main.svg

Decision a reader may question: ``construct`` prints the object with
``pprint`` (not ``str``), so nested containers of built objects stay
readable, and with no TARGET it builds ``main`` when the config has one and
every target otherwise, mirroring ``Project()()``.
"""

from __future__ import annotations

import argparse

from forgather.cli.command import Command
from forgather.cli.context import CommandContext, parse_assignments
from forgather.cli.errors import CLIError


def _target_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", nargs="?", metavar="TARGET", help="target (default: main)")


def _require_target(config, target: str | None) -> str:
    target = target or "main"
    if target not in config.targets:
        known = ", ".join(config.targets) or "none"
        raise CLIError(f"no target {target!r} in this config (targets: {known})")
    return target


def _code(ctx: CommandContext, args: argparse.Namespace) -> int:
    config = ctx.config
    ctx.emit(config.to_python(_require_target(config, args.target)))
    return 0


# -- construct -------------------------------------------------------------------


def _construct_arguments(parser: argparse.ArgumentParser) -> None:
    _target_argument(parser)
    parser.add_argument(
        "--var",
        action="append",
        metavar="NAME=VALUE",
        help="value of a !var for this build (parsed as YAML); repeatable",
    )


def _construct(ctx: CommandContext, args: argparse.Namespace) -> int:
    import pprint

    config = ctx.config
    context_vars = dict(parse_assignments(args.var, "--var"))
    if args.target is None and "main" not in config.targets:
        built = config.build(**context_vars)
    else:
        built = config.build(_require_target(config, args.target), **context_vars)
    ctx.emit(pprint.pformat(built, width=100, sort_dicts=False))
    return 0


# -- check -----------------------------------------------------------------------


def _check(ctx: CommandContext, args: argparse.Namespace) -> int:
    from forgather.config import check

    problems = check(ctx.config)
    if problems:
        ctx.emit("\n".join(problems))
        return 1
    ctx.emit(f"ok: {ctx.config_name}: {len(ctx.config.targets)} targets, no problems")
    return 0


# -- graph -----------------------------------------------------------------------


def _graph_arguments(parser: argparse.ArgumentParser) -> None:
    _target_argument(parser)
    parser.add_argument("--format", choices=("dot", "svg", "mermaid"), default="dot")


def _graph(ctx: CommandContext, args: argparse.Namespace) -> int:
    from forgather.config import to_dot, to_mermaid

    config = ctx.config
    target = _require_target(config, args.target) if args.target else None
    if args.format == "mermaid":
        ctx.emit(to_mermaid(config, target))
        return 0
    dot_source = to_dot(config, target)
    if args.format == "dot":
        ctx.emit(dot_source)
        return 0
    ctx.emit_bytes(render_svg(dot_source))
    return 0


def render_svg(dot_source: str) -> bytes:
    """Render Graphviz DOT to SVG with the ``dot`` program.

    Raises:
        CLIError: ``dot`` is not on PATH, or it rejected the input.
    """
    import shutil
    import subprocess

    dot = shutil.which("dot")
    if dot is None:
        raise CLIError(
            "--format svg needs Graphviz's `dot` program on PATH "
            "(e.g. `apt-get install graphviz`); --format dot or mermaid work without it"
        )
    result = subprocess.run([dot, "-Tsvg"], input=dot_source.encode(), capture_output=True)
    if result.returncode != 0:
        raise CLIError(f"dot failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


COMMANDS = {
    "code": Command(run=_code, add_arguments=_target_argument, uses_config=True),
    "construct": Command(run=_construct, add_arguments=_construct_arguments, uses_config=True),
    "check": Command(run=_check, uses_config=True),
    "graph": Command(run=_graph, add_arguments=_graph_arguments, uses_config=True),
}
