"""Project overview commands: ``ls``, ``index``, ``meta``, ``tlist``.

    forgather ls                 # this project's configs, with descriptions
    forgather ls -r              # every project below the directory
    forgather index > INDEX.md   # the same as Markdown
    forgather meta               # resolved meta.yaml and the search path
    forgather tlist --format md  # every template, by search directory

Decision a reader may question: ``ls`` really loads every config (render +
YAML) to read its ``meta`` target, instead of scanning the text for a
description. A config that does not load is then reported right there, as
``PARSE ERROR`` with the one-line reason, which is what a user scanning a
project wants to learn first. The cost is paid once: listings are cached
until a file on the project's search path changes (:mod:`ls_cache`).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from forgather.cli.command import Command
from forgather.cli.context import CommandContext


@dataclass
class ConfigSummary:
    """One line of ``ls``: a config's name and title, or why it failed to load."""

    name: str
    title: str = ""
    description: str = ""
    error: str | None = None

    @property
    def text(self) -> str:
        if self.error is not None:
            return f"PARSE ERROR: {self.error}"
        if self.title and self.description:
            return f"{self.title}: {self.description}"
        return self.title or self.description


def one_line(err: BaseException, strip_prefix: str = "") -> str:
    """A one-line reason for ``err``, with ``strip_prefix`` removed from paths."""
    text = getattr(err, "one_line", None) or (str(err).splitlines() or [type(err).__name__])[0]
    return text.replace(strip_prefix, "") if strip_prefix else text


def summarize_configs(project, template_vars: dict | None = None) -> list[ConfigSummary]:
    """Load every config of ``project`` and read its ``meta`` target."""
    summaries = []
    prefix = str(project.project_dir) + os.sep
    for name in project.config_names():
        summary = ConfigSummary(name)
        try:
            config = project.load(name, **(template_vars or {}))
            meta = config.build_data("meta") if "meta" in config.targets else {}
            if isinstance(meta, dict):
                summary.title = str(meta.get("config_name") or "")
                summary.description = str(meta.get("config_description") or "")
        except Exception as err:  # any failure is reported in the listing, not raised
            summary.error = one_line(err, prefix)
        summaries.append(summary)
    return summaries


@dataclass
class ProjectListing:
    """What ``ls`` shows for one project (JSON-serializable, for the cache)."""

    name: str
    description: str
    default_config: str | None
    config_prefix: str
    configs: list[ConfigSummary]

    @classmethod
    def from_dict(cls, data: dict) -> ProjectListing:
        configs = [ConfigSummary(**c) for c in data["configs"]]
        return cls(**{**data, "configs": configs})

    def format(self, indent: str = "") -> str:
        """The listing as text: a title line, then one line per config."""
        lines = [f"{indent}{self.name}" + (f": {self.description}" if self.description else "")]
        width = max((len(s.name) for s in self.configs), default=0) + 2
        for s in self.configs:
            mark = "*" if s.name == self.default_config else " "
            lines.append(f"{indent}  {mark} {s.name:<{width}}{s.text}".rstrip())
        if not self.configs:
            lines.append(f"{indent}    (no configs in templates/{self.config_prefix}/)")
        return "\n".join(lines)


def project_listing(project_dir, template_vars: dict, cache=None) -> ProjectListing:
    """List one project, from ``cache`` when it is still valid.

    Listings with template variables (``-D``) are neither read from nor
    written to the cache.

    Raises:
        ConfigError: the project itself (``meta.yaml``) does not load.
    """
    project_dir = Path(project_dir).resolve()
    use_cache = cache is not None and not template_vars
    if use_cache:
        stored = cache.get(project_dir)
        if stored is not None:
            return ProjectListing.from_dict(stored)
    from forgather.project import Project

    project = Project.open(project_dir)
    meta = project.meta
    if use_cache:  # before the configs render, so an edit during ls invalidates it
        fingerprint = cache.fingerprint(project_dir, str(meta.workspace_root), meta.searchpath)
    listing = ProjectListing(
        name=meta.name,
        description=meta.description,
        default_config=meta.default_config,
        config_prefix=meta.config_prefix,
        configs=summarize_configs(project, template_vars),
    )
    if use_cache:
        cache.put(
            project_dir, fingerprint, str(meta.workspace_root), meta.searchpath, asdict(listing)
        )
    return listing


# -- ls --------------------------------------------------------------------------


def _ls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-r", "--recursive", action="store_true", help="list every project below the directory"
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="render every config, ignoring cached listings"
    )


def _ls(ctx: CommandContext, args: argparse.Namespace) -> int:
    from forgather.cli.ls_cache import ListingCache

    cache = None if args.no_cache else ListingCache()
    if not args.recursive:
        ctx.emit(project_listing(ctx.project_dir, ctx.template_vars, cache).format())
        return 0
    from forgather.project.workspace import find_projects

    root = ctx.project_dir
    blocks = []
    for directory in find_projects(root):
        label = os.path.relpath(directory, root)
        try:
            listing = project_listing(directory, ctx.template_vars, cache)
        except Exception as err:  # a broken project is reported, the walk goes on
            prefix = str(Path(directory).resolve()) + os.sep
            blocks.append(f"{label}\n  PARSE ERROR: {one_line(err, prefix)}")
            continue
        blocks.append(f"{label}\n" + listing.format(indent="  "))
    ctx.emit("\n\n".join(blocks) if blocks else f"no projects below {root}")
    return 0


# -- index -----------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _index(ctx: CommandContext, args: argparse.Namespace) -> int:
    project = ctx.project
    meta = project.meta
    lines = [f"# {meta.name}", ""]
    if meta.description:
        lines += [meta.description, ""]
    lines += [
        f"Configs in `templates/{meta.config_prefix}/` (default: `{meta.default_config}`):",
        "",
        "| config | name | description |",
        "|---|---|---|",
    ]
    for s in summarize_configs(project, ctx.template_vars):
        title, desc = (s.title, s.description) if s.error is None else ("", s.text)
        name = f"`{s.name}`" + (" (default)" if s.name == meta.default_config else "")
        lines.append(f"| {name} | {_md_cell(title)} | {_md_cell(desc)} |")
    lines += ["", "Template search path (first match wins):", ""]
    lines += [f"{i}. `{ctx.relpath(d)}`" for i, d in enumerate(meta.searchpath, 1)]
    ctx.emit("\n".join(lines))
    return 0


# -- meta ------------------------------------------------------------------------


def _meta(ctx: CommandContext, args: argparse.Namespace) -> int:
    meta = ctx.project.meta
    resolved = meta.as_dict()
    lines = [f"{k}: {v}" for k, v in resolved.items() if k != "searchpath"]
    extra = {k: v for k, v in meta.values.items() if k not in resolved and k != "searchdir"}
    lines += [f"{k}: {v}" for k, v in sorted(extra.items())]
    lines.append("searchpath:")
    lines += [f"  - {d}" for d in resolved["searchpath"]]
    ctx.emit("\n".join(lines))
    return 0


# -- tlist -----------------------------------------------------------------------


def _tlist_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "md"), default="text")


def _tlist(ctx: CommandContext, args: argparse.Namespace) -> int:
    project = ctx.project
    by_dir: dict[str, list[str]] = {d: [] for d in project.meta.searchpath}
    for name, directory in project.environment.list_templates():
        by_dir.setdefault(directory, []).append(name)
    lines = []
    for directory, names in by_dir.items():
        if not names:
            continue
        label = ctx.relpath(directory)
        if args.format == "md":
            lines += [f"## `{label}`", ""] + [f"- `{n}`" for n in sorted(names)] + [""]
        else:
            lines += [f"{label}:"] + [f"    {n}" for n in sorted(names)]
    ctx.emit("\n".join(lines).rstrip())
    return 0


COMMANDS = {
    "ls": Command(run=_ls, add_arguments=_ls_arguments),
    "index": Command(run=_index),
    "meta": Command(run=_meta),
    "tlist": Command(run=_tlist, add_arguments=_tlist_arguments),
}
