"""``forgather project``: the original Forgather's project command (create, show, new_config).

Usage::

    forgather project                                   # the project directory
    forgather project create --name "Tiny LM" --description "A first model" [SOURCE.yaml]
    forgather project show                              # meta.yaml's resolved values
    forgather project new_config sweep.yaml [SOURCE.yaml] [--type config|project|ws]

``create`` makes the same project as ``ws project`` (``--project-dir-name``
names its directory; a SOURCE file becomes its default config). A new config
without a SOURCE extends the project's ``project.yaml`` when it has one, else
it is a config of its own (a ``meta`` and a ``main`` target), so it renders
with any template library on the search path.
"""

from __future__ import annotations

import argparse
import os
import shutil

from forgather.cli.command import Command
from forgather.cli.context import CommandContext, find_project_dir
from forgather.cli.errors import CLIError
from forgather.cli.workspace import add_project_options

_STANDALONE_CONFIG = """\
## A new config: `meta` describes it to `forgather ls`, `main` is what it builds.
meta:
    config_name: "{name}"
    config_description: ""
main: "Main Output"
"""


def _project_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="project_command", metavar="{create,show,new_config}")
    create = sub.add_parser("create", help="create a project under -p (as `ws project`)")
    add_project_options(create)
    create.add_argument(
        "--project-dir-name",
        metavar="NAME",
        help="the project's directory (default: the name, lower case, spaces as _)",
    )
    create.add_argument(
        "copy_from", nargs="?", metavar="SOURCE", help="a config file to copy as the default config"
    )
    sub.add_parser("show", help="the project's resolved meta.yaml (as `meta`)")
    new_config = sub.add_parser("new_config", help="create a config in the project")
    new_config.add_argument("config_name", metavar="NAME", help="file name (e.g. sweep.yaml)")
    new_config.add_argument(
        "copy_from", nargs="?", metavar="SOURCE", help="a config file to copy instead"
    )
    new_config.add_argument(
        "--type",
        choices=("config", "project", "ws"),
        default="config",
        help="where: config (the configs directory, default), project (its templates "
        "directory) or ws (the workspace's forgather_workspace/)",
    )


def _project(ctx: CommandContext, args: argparse.Namespace) -> int:
    if args.project_command is None:
        ctx.emit(os.path.abspath(find_project_dir(ctx.project_dir)))
        return 0
    if args.project_command == "create":
        return _create(ctx, args)
    if args.project_command == "show":
        from forgather.cli.listing import COMMANDS as LISTING

        return LISTING["meta"].run(ctx, args)
    return _new_config(ctx, args)


def _create(ctx: CommandContext, args: argparse.Namespace) -> int:
    from forgather.project import create_project

    source = _source(args.copy_from)
    name = args.project_dir_name or args.name.replace(" ", "_").lower()
    directory = os.path.join(ctx.project_dir, name)
    if os.path.exists(directory):
        raise CLIError(f"{directory} already exists")
    created = create_project(
        directory,
        name=args.name,
        description=args.description,
        config_prefix=args.config_prefix,
        default_config=args.default_config,
    )
    if source is not None:
        shutil.copyfile(source, created / "templates" / args.config_prefix / args.default_config)
    ctx.emit(f"created project {created}")
    return 0


def _new_config(ctx: CommandContext, args: argparse.Namespace) -> int:
    meta = ctx.project.meta
    templates = meta.searchdir[0]
    where = {
        "config": os.path.join(templates, meta.config_prefix),
        "project": templates,
        "ws": os.path.join(str(meta.workspace_root), "forgather_workspace"),
    }[args.type]
    path = os.path.join(where, args.config_name)
    if os.path.exists(path):
        raise CLIError(f"{path} already exists")
    source = _source(args.copy_from, str(meta.project_dir))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if source is not None:
        shutil.copyfile(source, path)
    else:
        from forgather.project.scaffold import config_text

        stem = os.path.splitext(os.path.basename(args.config_name))[0]
        extends = args.type == "config" and os.path.isfile(os.path.join(templates, "project.yaml"))
        with open(path, "x", encoding="utf-8") as f:
            f.write(config_text(stem) if extends else _STANDALONE_CONFIG.format(name=stem))
    ctx.emit(f"created {path}")
    return 0


def _source(path: str | None, project_dir: str | None = None) -> str | None:
    """``copy_from``, expanded: from the current directory, else (a relative path) from
    ``project_dir``, as ``-p PROJECT ... templates/configs/x.yaml`` means; an error when
    neither is a file."""
    if path is None:
        return None
    expanded = os.path.expanduser(path)
    if not os.path.isfile(expanded) and project_dir and not os.path.isabs(expanded):
        in_project = os.path.join(project_dir, expanded)
        if os.path.isfile(in_project):
            return in_project
    if not os.path.isfile(expanded):
        raise CLIError(f"{path}: no such file to copy")
    return expanded


COMMANDS = {"project": Command(run=_project, add_arguments=_project_arguments)}
