"""Node-graph commands: ``code``, ``construct``, ``check``, ``graph``.

    forgather code                       # Python that builds `main`
    forgather construct                  # build `main` and print it
    forgather construct --var scale=2    # a !var value for the build
    forgather construct --target f --call   # build f, call it, print the result
    forgather check                      # SPECs import, arguments match; builds nothing
    forgather graph --format svg -o main.svg
    forgather graph --format fconfig     # the graph as an indented outline

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
    parser.add_argument(
        "--target", dest="target_option", metavar="TARGET", help="the same as TARGET"
    )


def _chosen_target(args: argparse.Namespace) -> str | None:
    """TARGET or ``--target``; naming two different targets is a mistake."""
    if args.target and args.target_option and args.target != args.target_option:
        raise CLIError(f"two targets named: {args.target!r} and --target {args.target_option!r}")
    return args.target or args.target_option


def _require_target(config, target: str | None) -> str:
    target = target or "main"
    if target not in config.targets:
        known = ", ".join(config.targets) or "none"
        raise CLIError(f"no target {target!r} in this config (targets: {known})")
    return target


def _code(ctx: CommandContext, args: argparse.Namespace) -> int:
    config = ctx.config
    ctx.emit(config.to_python(_require_target(config, _chosen_target(args))), suffix=".py")
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
    parser.add_argument(
        "--call", action="store_true", help="call the built object (no arguments), print the result"
    )


def _construct(ctx: CommandContext, args: argparse.Namespace) -> int:
    import pprint

    config = ctx.config
    context_vars = dict(parse_assignments(args.var, "--var"))
    target = _chosen_target(args)
    if target is None and "main" not in config.targets:
        built = config.build(**context_vars)
    else:
        built = config.build(_require_target(config, target), **context_vars)
    if args.call:
        if not callable(built):
            raise CLIError(
                f"--call: {target or 'main'} built a {type(built).__name__}, not callable"
            )
        built = built()
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


_GRAPH_FORMATS = ("dot", "svg", "mermaid", "none", "repr", "yaml", "fconfig", "python")


def _graph_arguments(parser: argparse.ArgumentParser) -> None:
    _target_argument(parser)
    parser.add_argument(
        "--format",
        choices=_GRAPH_FORMATS,
        default="dot",
        help="dot (default), svg, mermaid: a drawing of the graph (of TARGET); "
        "none: load only (a check that the config parses); repr: the graph's Python repr; "
        "yaml: the graph as YAML; fconfig: an indented outline; python: code building "
        "TARGET (default main)",
    )
    parser.add_argument(
        "-d",
        "--debug",
        action="store_true",
        help="first print the Jinja source (after preprocessing) of every template, numbered",
    )


def outline(graph: dict) -> str:
    """The node graph as an indented outline: one ``key: value`` line per place.

    A node is shown by its label (``!call:builtins:dict``); one seen before
    is marked ``(shared, see above)`` and not expanded again.
    """
    from forgather.config.nodes import Node, describe
    from forgather.config.traverse import walk

    lines = []
    for visit in walk(graph):
        indent = "    " * (len(visit.path) - 1)
        value = visit.value
        if isinstance(value, Node):
            text = describe(value) + ("" if visit.first else "  (shared, see above)")
        else:
            text = repr(value)
        lines.append(f"{indent}{visit.path[-1]}: {text}")
    return "\n".join(lines)


def _graph(ctx: CommandContext, args: argparse.Namespace) -> int:
    if args.debug:  # before loading: the sources help most when the config fails to load
        print_jinja_sources(ctx)
    config = ctx.config
    target = _chosen_target(args)
    target = _require_target(config, target) if target else None
    if args.format == "none":
        return 0
    if args.format == "repr":
        ctx.emit(repr(config.graph))
    elif args.format == "yaml":
        ctx.emit(config.to_yaml(), suffix=".yaml")
    elif args.format == "fconfig":
        ctx.emit(outline(config.graph))
    elif args.format == "python":
        ctx.emit(config.to_python(_require_target(config, target)), suffix=".py")
    elif args.format == "mermaid":
        from forgather.config import to_mermaid

        diagram = to_mermaid(config, target)
        if ctx.edit or (ctx.output or "").endswith(".md"):  # a Markdown file: fenced, to render
            diagram = f"```mermaid\n{diagram.rstrip()}\n```"
        ctx.emit(diagram, suffix=".md")
    else:
        from forgather.config import to_dot

        dot_source = to_dot(config, target)
        if args.format == "dot":
            ctx.emit(dot_source, suffix=".dot")
        else:
            ctx.emit_bytes(render_svg(dot_source), suffix=".svg")
    return 0


def numbered(text: str) -> str:
    """``text`` with a right-aligned line number before each line."""
    return "".join(f"{i:>6}: {line}\n" for i, line in enumerate(text.split("\n"), 1))


def print_jinja_sources(ctx: CommandContext) -> None:
    """``pp -d``, ``graph -d``: each template's Jinja source, numbered, on stdout.

    Stdout, not ``ctx.emit``: diagnostics beside the output, as the original
    Forgather prints them; ``-o`` receives the output alone.
    """
    sources = ctx.project.environment.preprocessed_sources(ctx.template_name())
    for name, source in sources.items():
        print(f"{' ' + name + ' ':-^80}\n{numbered(source)}", flush=True)


def render_svg(dot_source: str, without_dot: str = "--format dot or mermaid") -> bytes:
    """Render Graphviz DOT to SVG with the ``dot`` program.

    Args:
        dot_source: the drawing.
        without_dot: the command's formats that need no Graphviz, for the error.

    Raises:
        CLIError: ``dot`` is not on PATH, or it rejected the input.
    """
    import shutil
    import subprocess

    dot = shutil.which("dot")
    if dot is None:
        raise CLIError(
            "--format svg needs Graphviz's `dot` program on PATH "
            f"(e.g. `apt-get install graphviz`); {without_dot} works without it"
        )
    result = subprocess.run([dot, "-Tsvg"], input=dot_source.encode(), capture_output=True)
    if result.returncode != 0:
        raise CLIError(f"dot failed: {result.stderr.decode(errors='replace').strip()}")
    return result.stdout


COMMANDS = {
    "code": Command(run=_code, add_arguments=_target_argument, uses_config=True),
    "construct": Command(run=_construct, add_arguments=_construct_arguments, uses_config=True),
    "check": Command(run=_check, uses_config=True),
    "graph": Command(
        run=_graph,
        add_arguments=_graph_arguments,
        uses_config=True,
        on_config_error=lambda ctx, args: args.debug and print_jinja_sources(ctx),
    ),
}
