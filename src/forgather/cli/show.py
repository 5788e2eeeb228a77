"""Config text commands: ``pp``, ``trefs``, ``targets``, ``diff``.

    forgather -t default.yaml pp                # rendered YAML
    forgather pp --set main.count=3             # the graph as YAML, with the override
    forgather trefs --format dot | dot -Tsvg    # templates behind the config
    forgather targets
    forgather diff 1_inheritance.yaml 2_includes.yaml

Decision a reader may question: with ``--set`` overrides, ``pp`` and ``diff``
print ``to_yaml()`` of the overridden graph instead of the rendered text,
because the rendered text is what the templates produced and cannot show a
value changed after loading; without overrides they print the rendered text
exactly, comments and all.
"""

from __future__ import annotations

import argparse

from forgather.cli.command import Command
from forgather.cli.context import CommandContext


def _yaml_of(ctx: CommandContext, config) -> str:
    return config.to_yaml() if ctx.overrides else config.pp


def _pp(ctx: CommandContext, args: argparse.Namespace) -> int:
    ctx.emit(_yaml_of(ctx, ctx.config))
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
    parser.add_argument("--format", choices=("text", "md", "dot"), default="text")


def _walk(ref, depth: int = 0):
    """Yield (depth, parent, ref) for every template in the tree, depth first."""
    stack = [(depth, None, ref)]
    while stack:
        d, parent, node = stack.pop()
        yield d, parent, node
        stack.extend((d + 1, node, c) for c in reversed(node.children))


def _trefs(ctx: CommandContext, args: argparse.Namespace) -> int:
    tree = ctx.project.environment.template_tree(ctx.template_name())
    lines = []
    if args.format == "dot":
        lines.append("digraph templates {\n    rankdir=LR;\n    node [shape=box];")
        for _, parent, ref in _walk(tree):
            if parent is not None:
                lines.append(f'    "{parent.name}" -> "{ref.name}" [label="{ref.kind}"];')
        if not tree.children:
            lines.append(f'    "{tree.name}";')
        lines.append("}")
    else:
        for depth, _, ref in _walk(tree):
            path = ctx.relpath(ref.path) if ref.path else "?"
            if args.format == "md":
                lines.append(f"{'  ' * depth}- `{ref.name}` ({ref.kind}): `{path}`")
            else:
                lines.append(f"{'    ' * depth}{ref.name} [{ref.kind}] {path}")
    ctx.emit("\n".join(lines))
    return 0


COMMANDS = {
    "pp": Command(run=_pp, uses_config=True),
    "targets": Command(run=_targets, uses_config=True),
    "diff": Command(run=_diff, add_arguments=_diff_arguments),
    "trefs": Command(run=_trefs, add_arguments=_trefs_arguments),
}
