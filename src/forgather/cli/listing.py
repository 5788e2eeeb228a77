"""Project overview commands: ``ls``, ``index``, ``meta``, ``tlist``.

    forgather ls                 # this project's configs, with descriptions
    forgather ls -r              # every project below the directory
    forgather ls proj_a proj_b   # these projects (with -r: every project below each)
    forgather ls -d              # and why each broken config failed, in full
    forgather index > INDEX.md   # the same as Markdown
    forgather meta               # resolved meta.yaml and the search path
    forgather tlist --format md  # every template, by search directory

Decision a reader may question: ``ls`` really loads every config (render +
YAML) to read its ``meta`` target, instead of scanning the text for a
description. A config that does not load is then reported right there, as
``PARSE ERROR`` with the one-line reason, which is what a user scanning a
project wants to learn first. The cost is paid once: listings are cached
until a file on the project's search path changes (:mod:`render_cache`).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from forgather.cli.command import Command
from forgather.cli.context import CommandContext
from forgather.cli.errors import EXIT_ERROR, EXIT_OK


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


def summarize_configs(project, template_vars: dict | None = None,
                      report=None) -> list[ConfigSummary]:  # fmt: skip
    """Load every config of ``project`` and read its ``meta`` target.

    Args:
        project: the project.
        template_vars: ``-D`` variables.
        report: called with (config name, exception) for each config that fails
            (``ls -d`` prints the whole error).
    """
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
            if report is not None:
                report(name, err)
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

    def _is_default(self, name: str) -> bool:
        """Whether config ``name`` is the default (``meta.yaml`` may leave off ``.yaml``)."""
        return self.default_config in (name, name.removesuffix(".yaml"))

    def format(self, indent: str = "") -> str:
        """The listing as text: a title line, then one line per config."""
        lines = [f"{indent}{self.name}" + (f": {self.description}" if self.description else "")]
        width = max((len(s.name) for s in self.configs), default=0) + 2
        for s in self.configs:
            mark = "*" if self._is_default(s.name) else " "
            lines.append(f"{indent}  {mark} {s.name:<{width}}{s.text}".rstrip())
        if not self.configs:
            lines.append(f"{indent}    (no configs in templates/{self.config_prefix}/)")
        elif self.default_config and not any(self._is_default(s.name) for s in self.configs):
            lines.append(f"{indent}    (default_config {self.default_config!r} is not among them)")
        return "\n".join(lines)


def project_listing(project_dir, template_vars: dict, cache=None, report=None) -> ProjectListing:
    """List one project, from ``cache`` when it is still valid.

    Listings with template variables (``-D``) are neither read from nor
    written to the cache; ``report`` is passed to :func:`summarize_configs`.

    Raises:
        ConfigError: the project itself (``meta.yaml``) does not load.
    """
    project_dir = Path(project_dir).resolve()
    use_cache = cache is not None and not template_vars
    if use_cache:
        stored = cache.get(project_dir)
        if stored is not None:
            return ProjectListing.from_dict(stored)
    from forgather.config.template_globals import volatile_reads
    from forgather.project import Project

    reads_before = volatile_reads()
    project = Project.open(project_dir)
    meta = project.meta
    if use_cache:  # before the configs render, so an edit during ls invalidates it
        fingerprint = cache.fingerprint(project_dir, str(meta.workspace_root), meta.searchpath)
    listing = ProjectListing(
        name=meta.name,
        description=meta.description,
        default_config=meta.default_config,
        config_prefix=meta.config_prefix,
        configs=summarize_configs(project, template_vars, report),
    )
    if use_cache and volatile_reads() == reads_before:  # a clock in the text: never stored
        cache.put(
            project_dir, fingerprint, str(meta.workspace_root), meta.searchpath, asdict(listing)
        )
    return listing


def shown_path(path: str, workspace_root) -> str:
    """``path`` relative to the current directory when both are in the workspace, else absolute.

    What ``--format files`` prints: short names for the user's own templates,
    and no ``../../..`` chains to a library installed elsewhere or from a
    directory outside the workspace.
    """
    absolute = os.path.abspath(path)
    root = os.path.abspath(workspace_root)
    cwd = os.getcwd()
    if all(os.path.commonpath([p, root]) == root for p in (absolute, cwd)):
        return os.path.relpath(absolute)
    return absolute


# -- ls --------------------------------------------------------------------------


def _ls_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-r", "--recursive", action="store_true", help="list every project below the directory"
    )
    parser.add_argument(
        "-d",
        "--debug",
        action="store_true",
        help="print the whole error of each config that fails to load (to stderr)",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="render every config, ignoring cached listings"
    )
    parser.add_argument(
        "projects",
        nargs="*",
        metavar="PROJECT",
        help="project directories to list (default: -p, or the project around it)",
    )


def _report_to_stderr(show_traceback: bool):
    """A ``report`` for :func:`summarize_configs` printing each failure in full."""
    import sys

    from forgather.cli.errors import format_error

    def report(name: str, err: BaseException) -> None:
        if show_traceback:
            import traceback

            print(f"{name}:", file=sys.stderr)
            traceback.print_exception(err)
        else:
            print(f"{name}: {format_error(err)}", file=sys.stderr)

    return report


def _ls(ctx: CommandContext, args: argparse.Namespace) -> int:
    from forgather.cli.context import find_project_dir
    from forgather.cli.render_cache import ListingCache

    cache = None if args.no_cache or args.debug else ListingCache()
    report = _report_to_stderr("--traceback" in ctx.argv) if args.debug else None
    if not args.recursive and not args.projects:
        project_dir = find_project_dir(ctx.project_dir)
        listing = project_listing(project_dir, ctx.template_vars, cache, report)
        if os.path.realpath(project_dir) != os.path.realpath(ctx.project_dir):
            ctx.emit(f"{project_dir}\n" + listing.format(indent="  "))
        else:
            ctx.emit(listing.format())
        return 0
    from forgather.project.workspace import find_projects

    blocks = []
    code = EXIT_OK  # 1 when a directory named on the command line could not be listed
    for root in args.projects or [ctx.project_dir]:
        if args.recursive and not os.path.isdir(root):
            blocks.append(f"{root}\n  ERROR: no such directory")
            code = EXIT_ERROR
            continue
        found = list(find_projects(root)) if args.recursive else [Path(root)]
        for directory in found:
            label = os.path.relpath(directory, root) if args.recursive else str(root)
            if args.recursive and args.projects:
                label = os.path.normpath(os.path.join(root, label))
            try:
                listing = project_listing(directory, ctx.template_vars, cache, report)
            except Exception as err:  # a broken project is reported, the walk goes on
                prefix = str(Path(directory).resolve()) + os.sep
                blocks.append(f"{label}\n  PARSE ERROR: {one_line(err, prefix)}")
                code = code if args.recursive else EXIT_ERROR
                continue
            blocks.append(f"{label}\n" + listing.format(indent="  "))
    where = " ".join(args.projects) or ctx.project_dir
    ctx.emit("\n\n".join(blocks) if blocks else f"no projects below {where}")
    return code


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
    ctx.emit("\n".join(lines), suffix=".md")
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
    parser.add_argument(
        "--format",
        choices=("text", "md", "files"),
        default="text",
        help="text (default): names by search directory; md: the same in Markdown; "
        "files: one file per line, relative to the current directory",
    )


def _tlist(ctx: CommandContext, args: argparse.Namespace) -> int:
    project = ctx.project
    by_dir: dict[str, list[str]] = {d: [] for d in project.meta.searchpath}
    for name, directory in project.environment.list_templates():
        by_dir.setdefault(directory, []).append(name)
    if args.format == "files":
        files = [os.path.join(d, n) for d, names in by_dir.items() for n in sorted(names)]
        root = project.meta.workspace_root
        ctx.emit("\n".join(shown_path(f, root) for f in files if os.path.isfile(f)))
        return 0
    lines = []
    for directory, names in by_dir.items():
        if not names:
            continue
        label = ctx.relpath(directory)
        if args.format == "md":
            lines += [f"## `{label}`", ""] + [f"- `{n}`" for n in sorted(names)] + [""]
        else:
            lines += [f"{label}:"] + [f"    {n}" for n in sorted(names)]
    ctx.emit("\n".join(lines).rstrip(), suffix=".md" if args.format == "md" else ".txt")
    return 0


COMMANDS = {
    "ls": Command(run=_ls, add_arguments=_ls_arguments),
    "index": Command(run=_index),
    "meta": Command(run=_meta),
    "tlist": Command(run=_tlist, add_arguments=_tlist_arguments),
}
