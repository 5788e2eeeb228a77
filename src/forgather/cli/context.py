"""The state one command runs with: global options, the project, the config.

:class:`CommandContext` loads the project (``meta.yaml`` and its template
environment) and the config on first use, so a command pays only for what it
touches: ``--help`` loads nothing, ``ls`` renders no config it does not list.

Decision a reader may question: ``-D`` and ``--set`` values are parsed as YAML
here, in the CLI, not in the config package: ``-D lr=1e-3`` must mean the float
``0.001`` and ``-D name=abc`` the string ``abc``, and only the command line has
raw text to parse. They are read as YAML 1.2 core (``forgather.cli.values``):
``--set main.args.eval_strategy=no`` is the string ``no``.
"""

from __future__ import annotations

import os
import sys

from forgather.cli.errors import CLIError, UsageError
from forgather.cli.values import parse_yaml_value

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a cached pp's start-up)
if TYPE_CHECKING:
    from typing import Any

    from forgather.config import Config
    from forgather.project import Project


def parse_assignments(items: list[str] | None, option: str) -> list[tuple[str, Any]]:
    """Split ``NAME=VALUE`` items and parse each value as YAML 1.2 core.

    Args:
        items: the raw option values, in command-line order.
        option: the option name, for error messages.

    Raises:
        UsageError: an item without ``=`` or with an empty name.
    """
    pairs = []
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"{option} expects NAME=VALUE, got {item!r}")
        if option == "-D" and not name.strip().isidentifier():  # templates could never read it
            raise UsageError(f"-D {name.strip()}: not a variable name (letters, digits and _)")
        pairs.append((name.strip(), parse_yaml_value(value)))
    return pairs


def find_project_dir(start: str | os.PathLike) -> str:
    """``start``, or the nearest directory above it holding a ``meta.yaml``.

    As in the original Forgather, a command run inside a project (in
    ``templates/configs``, say) works on that project. When no directory up
    to the root is a project, ``start`` is returned and opening it reports
    the missing ``meta.yaml``.
    """
    path = os.path.abspath(start)
    while True:
        if os.path.isfile(os.path.join(path, "meta.yaml")):
            return path if os.path.abspath(start) != path else os.fspath(start)
        parent = os.path.dirname(path)
        if parent == path:
            return os.fspath(start)
        path = parent


class CommandContext:
    """Global options plus the lazily loaded project and config of one command.

    Args:
        project_dir: the project directory (``-p``).
        config_template: the config name (``-t``), or ``None`` for the default.
        template_vars: ``-D`` variables, already parsed.
        overrides: ``--set`` (path, value) pairs, applied after loading.
        output: file that receives the command's output (``-o``), or ``None``.
        argv: the ``forgather`` arguments that run this command again (global
            options, the command name, its own arguments): what ``train``
            starts on each rank, whether the command came from the process's
            command line or from a line of the interactive shell.
        command: the command's name (names the ``-e`` file).
        edit: ``-e``: write the output to ``./tmp/<config>_<command><suffix>``
            and open it in the user's editor when the command ends (:meth:`close`).
        no_dyn: ``--no-dyn``: the config's ``dynamic_args`` are not options.

    Attributes:
        dynamic_args: the template variables the config's options gave
            (given or implicit, see :mod:`forgather.cli.dynamic_args`), set
            by the dispatcher before the command runs.
    """

    def __init__(
        self,
        project_dir: str = ".",
        config_template: str | None = None,
        template_vars: dict[str, Any] | None = None,
        overrides: list[tuple[str, Any]] | None = None,
        output: str | None = None,
        argv: list[str] | None = None,
        command: str = "output",
        edit: bool = False,
        no_dyn: bool = False,
    ):
        self.project_dir = project_dir
        self.config_template = config_template
        self.template_vars = dict(template_vars or {})
        self.overrides = list(overrides or [])
        self.output = os.path.expanduser(output) if output else output
        self.argv = list(argv or [])
        self.command = command
        self.edit = edit
        self.no_dyn = no_dyn
        self.dynamic_args: dict[str, Any] = {}
        self._edit_path: str | None = None
        self._project: Project | None = None
        self._config: Config | None = None
        self._output_started = False

    # -- loading -------------------------------------------------------------

    @property
    def project(self) -> Project:
        """The project (``meta.yaml`` rendered, no config loaded yet)."""
        if self._project is None:
            from forgather.project import Project

            self._project = Project.open(find_project_dir(self.project_dir))
        return self._project

    @property
    def config_name(self) -> str:
        """The config the command works on: ``-t`` or the project's default."""
        name = self.config_template or self.project.default_config()
        if not name:
            raise CLIError(
                f"project {self.project.meta.name!r} has no default_config; name one with -t"
            )
        return name

    def template_name(self, config: str | None = None) -> str:
        """Template name (``configs/x.yaml``) of ``config`` (default: the selected one)."""
        return self.project.template_name(config or self.config_name)

    @property
    def config(self) -> Config:
        """The selected config, loaded once with ``-D`` variables and ``--set`` applied."""
        if self._config is None:
            self._config = self.load_config(self.config_name)
            warn_unread_variables(self._config, self.template_vars)
        return self._config

    def load_config(self, name: str, **extra_vars: Any) -> Config:
        """Load a config of the project with ``-D`` (+ ``extra_vars``) and ``--set`` applied."""
        from forgather.config import ConfigError

        config = self.project.load(name, **{**self.template_vars, **extra_vars})
        for path, value in self.overrides:
            try:
                config.set_value(path, value)
            except ConfigError as err:  # a --set naming no place: a bad option value
                raise UsageError(str(err)) from None
        return config

    def reload_config(self, **extra_vars: Any) -> Config:
        """Load the selected config again with more variables (dynamic args).

        The project and its template environment are reused, so only the
        config is rendered again; Jinja's compiled templates are cached.
        """
        self._config = self.load_config(self.config_name, **extra_vars)
        return self._config

    # -- output --------------------------------------------------------------

    def _target(self, suffix: str) -> str | None:
        """The file output goes to: the ``-e`` file, the ``-o`` file or ``None`` (stdout)."""
        if not self.edit:
            return self.output
        if self._edit_path is None:
            config = os.path.basename(self.config_template or "")
            config = config[: -len(".yaml")] if config.endswith(".yaml") else config
            name = f"{config}_{self.command}" if config else self.command
            os.makedirs("tmp", exist_ok=True)
            self._edit_path = os.path.join("tmp", name + suffix)
        return self._edit_path

    def refuse_config_options(self, command: str, hint: str = "") -> None:
        """Raise when ``-t``, ``-D`` or ``--set`` was given to a command that reads no config
        (they would be dropped without a word); ``hint`` ends the message when ``-t`` was."""
        given = [flag for flag, value in (("-t", self.config_template), ("-D", self.template_vars),
                                          ("--set", self.overrides)) if value]  # fmt: skip
        if given:
            hint = hint if "-t" in given else ""
            raise CLIError(
                f"{command} reads no config: {', '.join(given)} has no effect here{hint}"
            )

    def emit(self, text: str, suffix: str = ".txt") -> None:
        """Write ``text`` (plus a final newline if missing) to stdout, the ``-o`` or ``-e`` file.

        Args:
            text: the output.
            suffix: the file type, for the ``-e`` file's name (``.yaml``, ``.py``...).
        """
        if text and not text.endswith("\n"):
            text += "\n"
        target = self._target(suffix)
        if target is None:
            sys.stdout.write(text)
            return
        mode = "a" if self._output_started else "w"
        self._output_started = True
        with open(target, mode, encoding="utf-8") as f:
            f.write(text)

    def emit_bytes(self, data: bytes, suffix: str = ".bin") -> None:
        """Write binary output (e.g. SVG from Graphviz) to stdout, the ``-o`` or ``-e`` file."""
        target = self._target(suffix)
        if target is None:
            sys.stdout.flush()
            sys.stdout.buffer.write(data)
            return
        with open(target, "ab" if self._output_started else "wb") as f:
            f.write(data)
        self._output_started = True

    def close(self) -> None:
        """With ``-e``: open the file the command wrote in ``$VISUAL``/``$EDITOR`` (else ``vi``)."""
        if self._edit_path is not None:
            open_in_editor(self._edit_path, f"The output is in {self._edit_path}")

    def relpath(self, path: str) -> str:
        """``path`` relative to the project directory (stable across clones)."""
        try:
            return os.path.relpath(path, self.project.project_dir)
        except ValueError:  # another drive on Windows
            return path


def open_in_editor(path: str, after_failure: str = "") -> None:
    """Open ``path`` in ``$VISUAL``, else ``$EDITOR``, else ``vi``, and wait for it.

    Raises:
        CLIError: the editor could not be started (``after_failure`` is added).
    """
    import shlex
    import subprocess

    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    print(f"Opening {path} in {editor}", file=sys.stderr)
    try:
        subprocess.run([*shlex.split(editor), path], check=False)
    except OSError as err:
        raise CLIError(
            f"cannot start the editor {editor!r} ({err.strerror}); set $EDITOR. {after_failure}"
        ) from None


def warn_unread_variables(config: Config, template_vars: dict[str, Any]) -> None:
    """Say on stderr which ``-D`` variables no template of the config reads.

    A misspelt name (``-D max_step=5``) would otherwise be ignored without a
    word, and a training run would go on with the config's own value.
    """
    if not template_vars:
        return
    read = config.variables_read()
    if read is None:
        return
    import difflib

    candidates = sorted(read)
    for name in (n for n in template_vars if n not in read):
        close = difflib.get_close_matches(name, candidates, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        print(f"forgather: warning: -D {name}: no template of {config.name} reads this "
              f"variable{hint}", file=sys.stderr)  # fmt: skip
