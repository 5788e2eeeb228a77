"""Config text commands: ``pp``, ``why``, ``trefs``, ``targets``, ``diff``.

    forgather -t default.yaml pp                # rendered YAML
    forgather pp --annotate                     # each line with the template file:line behind it
    forgather why main.args.learning_rate       # where a value was set, and what it overrode
    forgather pp --set main.count=3             # the graph as YAML, with the override
    forgather pp -d                             # each template's Jinja source, then the YAML
    forgather trefs --format dot | dot -Tsvg    # templates behind the config
    forgather trefs --format files              # their files, one per line
    forgather targets
    forgather diff 1_inheritance.yaml 2_includes.yaml

Decision a reader may question: with ``--set`` overrides, ``pp`` and ``diff``
print ``to_yaml()`` of the overridden graph instead of the rendered text,
because the rendered text is what the templates produced and cannot show a
value changed after loading; without overrides they print the rendered text
exactly, comments and all.

When the config's options (``dynamic_args``) give template variables, ``pp``
first prints ``# Dynamic arguments received: {...}`` and a blank line, as the
original Forgather does; like the original's, that line and the ``-d``
sources go to the terminal (stdout) even with ``-o``, which receives the YAML
alone.
"""

from __future__ import annotations

import argparse
import sys

from forgather.cli.build import print_jinja_sources, render_svg
from forgather.cli.command import Command
from forgather.cli.context import CommandContext


def _yaml_of(ctx: CommandContext, config) -> str:
    return config.to_yaml() if ctx.overrides else config.pp


def _shown(ctx: CommandContext, file: str) -> str:
    """A template file as ``trefs --format files`` prints it: relative to the current
    directory when in the workspace, else absolute (``<string>`` as it is)."""
    if file.startswith("<"):
        return file
    from forgather.cli.listing import shown_path

    return shown_path(file, ctx.project.meta.workspace_root)


def _annotated(ctx: CommandContext, config) -> str:
    """The rendered YAML, each line after the template file:line that produced it."""
    lines = config.annotated_lines()
    where = [f"{_shown(ctx, loc.file)}:{loc.line}" if loc else "" for loc, _ in lines]
    width = max(map(len, where), default=0)
    return "\n".join(
        f"{w:<{width}} | {text}".rstrip() for w, (_, text) in zip(where, lines, strict=True)
    )


def _pp_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-d",
        "--debug",
        action="store_true",
        help="first print the Jinja source (after preprocessing) of every template, numbered",
    )
    parser.add_argument(
        "--annotate",
        action="store_true",
        help="print each rendered line after the template file:line that produced it",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="render afresh and store nothing (the text is otherwise kept, and printed again "
        "while no template, meta.yaml or Forgather file changes)",
    )


def _pp(ctx: CommandContext, args: argparse.Namespace) -> int:
    if ctx.dynamic_args:
        print(f"# Dynamic arguments received: {ctx.dynamic_args}\n", flush=True)
    if args.debug:  # before loading: the sources help most when the config fails to load
        print_jinja_sources(ctx)
    config = ctx.config
    if args.annotate:
        if ctx.overrides:
            print(
                "forgather: note: --annotate shows the rendered text, without the --set "
                "overrides (forgather why PATH shows them)",
                file=sys.stderr,
            )
        ctx.emit(_annotated(ctx, config))
        return 0
    ctx.emit(_yaml_of(ctx, config), suffix=".yaml")
    return 0


# -- why -------------------------------------------------------------------------


def _why_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help="a place in the config, as --set and graph spell it (main.args.learning_rate)",
    )


def _why(ctx: CommandContext, args: argparse.Namespace) -> int:
    config = ctx.config
    reports = [config.why(path).format(lambda f: _shown(ctx, f)) for path in args.paths]
    ctx.emit("\n\n".join(reports))
    return 0


def _targets(ctx: CommandContext, args: argparse.Namespace) -> int:
    ctx.emit("\n".join(ctx.config.targets))
    return 0


# -- diff ------------------------------------------------------------------------


def _diff_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config_a", metavar="CONFIG_A")
    parser.add_argument("config_b", metavar="CONFIG_B")


def _diff(ctx: CommandContext, args: argparse.Namespace) -> int:
    import difflib

    a = _yaml_of(ctx, ctx.load_config(args.config_a))
    b = _yaml_of(ctx, ctx.load_config(args.config_b))
    lines = difflib.unified_diff(
        a.splitlines(keepends=True),
        b.splitlines(keepends=True),
        fromfile=args.config_a,
        tofile=args.config_b,
    )
    ctx.emit("".join(line if line.endswith("\n") else line + "\n" for line in lines))
    return 0


# -- trefs -----------------------------------------------------------------------


def _trefs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=("text", "md", "dot", "files", "tree", "svg"),
        default="text",
        help="text (default): name [how] file, indented; md: a Markdown list; "
        "files: each file once (relative to the current directory when in the workspace); tree: drawn with "
        "branches; dot, svg: a Graphviz graph (svg needs `dot` on PATH)",
    )


def _walk(ref, depth: int = 0):
    """Yield (depth, parent, ref) for every template in the tree, depth first."""
    stack = [(depth, None, ref)]
    while stack:
        d, parent, node = stack.pop()
        yield d, parent, node
        stack.extend((d + 1, node, c) for c in reversed(node.children))


def _dot(tree) -> str:
    lines = ["digraph templates {\n    rankdir=LR;\n    node [shape=box];"]
    for _, parent, ref in _walk(tree):
        if parent is not None:
            lines.append(f'    "{parent.name}" -> "{ref.name}" [label="{ref.kind}"];')
    if not tree.children:
        lines.append(f'    "{tree.name}";')
    lines.append("}")
    return "\n".join(lines)


def _tree_lines(ctx: CommandContext, ref, prefix: str = "", last: bool = True,
                root: bool = True) -> list[str]:  # fmt: skip
    """``ref`` and its children drawn with ``├──``/``└──`` branches."""
    where = ctx.relpath(ref.path) if ref.path else "?"
    label = f"{ref.name} ({where})" if root else f"{ref.name} [{ref.kind}] ({where})"
    lines = [label if root else f"{prefix}{'└── ' if last else '├── '}{label}"]
    inner = "" if root else prefix + ("    " if last else "│   ")
    for i, child in enumerate(ref.children):
        lines += _tree_lines(ctx, child, inner, i == len(ref.children) - 1, root=False)
    return lines


def _trefs(ctx: CommandContext, args: argparse.Namespace) -> int:
    tree = ctx.project.environment.template_tree(ctx.template_name())
    if args.format in ("dot", "svg"):
        if args.format == "dot":
            ctx.emit(_dot(tree), suffix=".dot")
        else:
            ctx.emit_bytes(render_svg(_dot(tree), without_dot="--format dot"), suffix=".svg")
        return 0
    if args.format == "tree":
        ctx.emit("\n".join(_tree_lines(ctx, tree)))
        return 0
    if args.format == "files":
        from forgather.cli.listing import shown_path

        root = ctx.project.meta.workspace_root
        files = dict.fromkeys(shown_path(r.path, root) for _, _, r in _walk(tree) if r.path)
        ctx.emit("\n".join(files))
        return 0
    lines = []
    for depth, _, ref in _walk(tree):
        path = ctx.relpath(ref.path) if ref.path else "?"
        if args.format == "md":
            lines.append(f"{'  ' * depth}- `{ref.name}` ({ref.kind}): `{path}`")
        else:
            lines.append(f"{'    ' * depth}{ref.name} [{ref.kind}] {path}")
    ctx.emit("\n".join(lines), suffix=".md" if args.format == "md" else ".txt")
    return 0


COMMANDS = {
    "pp": Command(
        run=_pp,
        add_arguments=_pp_arguments,
        uses_config=True,
        on_config_error=lambda ctx, args: args.debug and print_jinja_sources(ctx),
        cached_output=True,
    ),
    "why": Command(
        run=_why,
        add_arguments=_why_arguments,
        uses_config=True,
        description="Print the value at each PATH, the template file:line that set it (with "
        "the include/extends chain to it), the earlier lines it overrode, and every "
        "template defining the block it is in, most derived first, with their super() calls.",
    ),
    "targets": Command(run=_targets, uses_config=True),
    "diff": Command(run=_diff, add_arguments=_diff_arguments),
    "trefs": Command(run=_trefs, add_arguments=_trefs_arguments),
}
