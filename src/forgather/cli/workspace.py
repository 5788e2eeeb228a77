"""Scaffolding commands: ``ws init``, ``ws create`` and ``ws project``; ``ws`` alone
prints the workspace directory.

    forgather ws init --name "My models" --description "..."        # here
    forgather ws create --name "My models" --forgather-dir ~/src/forgather -l base  # ./my_models/
    forgather -p ~/work ws init --name Work --forgather-dir ~/src/forgather ~/shared/templates
    forgather ws project --name "Tiny LM" --description "..." tiny_lm
    forgather -p tiny_lm ls

Decision a reader may question: ``-p`` names the directory these commands
write into (the workspace root, or the parent of the new project), so the
same global option means "where" for every command.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from forgather.cli.command import Command
from forgather.cli.context import CommandContext
from forgather.cli.errors import CLIError


def _ws_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="ws_command", metavar="{init,create,project}")
    init = sub.add_parser("init", help="create forgather_workspace/ in the directory (-p)")
    init.add_argument("--name", required=True, help="workspace name")
    init.add_argument("--description", default="", help="one-line description")
    init.add_argument(
        "--forgather-dir",
        metavar="DIR",
        help="Forgather directory templates see as ns.forgather_dir (default: this install)",
    )
    init.add_argument(
        "search_path",
        nargs="*",
        metavar="SEARCH_PATH",
        help="extra template directories every project searches",
    )
    init.add_argument(
        "--no-defaults",
        action="store_true",
        help="leave forgather_workspace/ itself off the search path",
    )
    create = sub.add_parser(
        "create",
        help="create a workspace directory with forgather_workspace/ in it (the original's command)",
    )
    create.add_argument("--name", required=True, help="workspace name")
    create.add_argument("--description", default="", help="one-line description")
    create.add_argument(
        "--forgather-dir",
        metavar="DIR",
        help="Forgather directory templates see as ns.forgather_dir (default: this install)",
    )
    create.add_argument(
        "-l",
        "--lib",
        action="append",
        default=[],
        metavar="NAME",
        help="search FORGATHER_DIR/templatelib/NAME too; repeatable",
    )
    create.add_argument(
        "--search-path",
        action="append",
        default=[],
        metavar="DIR",
        help="another template directory every project searches; repeatable",
    )
    create.add_argument(
        "workspace_dir",
        nargs="?",
        metavar="DIR",
        help="the new directory (default: the name in snake_case, under -p)",
    )
    project = sub.add_parser("project", help="create a project from examples/template_project")
    add_project_options(project)
    project.add_argument(
        "directory",
        nargs="?",
        metavar="DIR",
        help="new project directory (default: the name in snake_case)",
    )


def add_project_options(parser: argparse.ArgumentParser) -> None:
    """The options of a new project (`ws project`, and the original's `project create`)."""
    parser.add_argument("--name", required=True, help="project name")
    parser.add_argument("--description", default="", help="one-line description")
    parser.add_argument("--config-prefix", default="configs", help="default: configs")
    parser.add_argument("--default-config", default="default.yaml", help="default: default.yaml")


def _snake_case(name: str) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "project"


def _ws(ctx: CommandContext, args: argparse.Namespace) -> int:
    from forgather.project import create_project, find_workspace_root, init_workspace

    if args.ws_command is None:
        root = find_workspace_root(ctx.project_dir)
        if root is None:
            raise CLIError(
                f"no forgather_workspace/ in {os.path.abspath(ctx.project_dir)} or any parent; "
                "create one with `forgather ws init`"
            )
        ctx.emit(str(root))
        return 0
    if args.ws_command == "create":
        return _ws_create(ctx, args)
    if args.ws_command == "init":
        created = init_workspace(
            ctx.project_dir,
            name=args.name,
            description=args.description,
            forgather_dir_path=_existing_forgather_dir(args.forgather_dir),
            search_paths=_noted_search_paths(args.search_path),
            no_defaults=args.no_defaults,
        )
        ctx.emit(f"created workspace {created}")
        return 0
    directory = os.path.join(ctx.project_dir, args.directory or _snake_case(args.name))
    created = create_project(
        directory,
        name=args.name,
        description=args.description,
        config_prefix=args.config_prefix,
        default_config=args.default_config,
    )
    ctx.emit(f"created project {created}")
    if find_workspace_root(created) is None:
        print(
            f"note: no forgather_workspace/ above {created}; create one with `forgather ws init`",
            file=sys.stderr,
        )
    return 0


def _ws_create(ctx: CommandContext, args: argparse.Namespace) -> int:
    from forgather.project import forgather_dir, init_workspace

    directory = args.workspace_dir or os.path.join(
        ctx.project_dir, _snake_case(args.name.replace(".", ""))
    )
    if os.path.exists(directory):
        raise CLIError(f"{directory} already exists")
    chosen_dir = _existing_forgather_dir(args.forgather_dir)
    libs_root = os.path.join(chosen_dir or forgather_dir(), "templatelib")
    libraries = [os.path.join(libs_root, lib) for lib in args.lib]
    for lib, path in zip(args.lib, libraries, strict=True):
        if not os.path.isdir(path):
            available = sorted(d.name for d in os.scandir(libs_root) if d.is_dir())
            raise CLIError(
                f"-l {lib}: no template library {path} (there: {', '.join(available) or 'none'})"
            )
    created = init_workspace(
        directory,
        name=args.name,
        description=args.description,
        forgather_dir_path=chosen_dir,
        search_paths=_noted_search_paths(args.search_path) + libraries,
    )
    ctx.emit(f"created workspace {created}")
    return 0


def _existing_forgather_dir(directory: str | None) -> str | None:
    """``--forgather-dir``, expanded; an error when it is not a directory (None: not given)."""
    if directory is None:
        return None
    expanded = os.path.expanduser(directory)
    if not os.path.isdir(os.path.join(expanded, "templatelib")):
        raise CLIError(f"--forgather-dir {directory}: not a Forgather directory (no templatelib/)")
    return expanded


def _noted_search_paths(paths: list[str]) -> list[str]:
    """The search paths, expanded; a note for each that does not exist (yet)."""
    expanded = [os.path.expanduser(p) for p in paths]
    for path in expanded:
        if not os.path.isdir(path):
            print(f"note: search path {path} does not exist (yet)", file=sys.stderr)
    return expanded


COMMANDS = {"ws": Command(run=_ws, add_arguments=_ws_arguments)}
