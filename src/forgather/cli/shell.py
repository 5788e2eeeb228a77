"""``forgather -i``: an interactive shell over the same commands.

    $ forgather -p examples/tutorials/project_composition -i
    forgather:project_composition> ls
    forgather:project_composition> config 2_includes.yaml
    forgather:project_composition [2_includes.yaml]> pp
    forgather:project_composition [2_includes.yaml]> -D greeting=hi pp

Each line is a ``forgather`` command line without the word ``forgather``; the
shell's project (``project DIR``) and config (``config NAME``) are put in front
of it as ``-p``/``-t``. Tab completes command names and config names; history
persists across sessions (readline, in the user's state directory).

Decision a reader may question: each line goes through ``main()`` exactly as
typed on the terminal would, rather than through a second command parser, so
the shell cannot drift from the CLI; the price is that every line reloads the
project (a few milliseconds). ``main`` hands itself to :func:`run_shell`
(``run_line``) instead of this module importing it: ``main`` starts the shell,
so an import back would be a cycle.
"""

from __future__ import annotations

import argparse
import cmd
import contextlib
import os
import shlex
from collections.abc import Callable

from forgather.cli.registry import (
    COMMANDS,
    READS_NO_CONFIG,
    assignment_words,
    command_listing,
)

_CONFIG_WORDS = {"-t", "--config-template", "config", "diff"}
_SHELL_COMMANDS = (
    ("config", "select a config (config NAME)"),
    ("configs", "list the project's configs (as ls)"),
    ("project", "select a project directory (project DIR; also cd DIR)"),
    ("pwd", "print the project directory"),
    ("edit", "open the selected config (or edit PATH) in $EDITOR"),
    ("debug", "show tracebacks of errors from now on (again: stop)"),
    ("commands", "list the forgather commands"),
    ("quit", "leave the shell (also Ctrl-D)"),
)
#: First words after `project` that are the `project` command's, not a directory.
_PROJECT_SUBCOMMANDS = ("create", "show", "new_config", "-h", "--help")


class ForgatherShell(cmd.Cmd):
    """A ``cmd.Cmd`` that forwards each line to ``run_line`` (:func:`forgather.cli.main.main`).

    Args:
        run_line: runs one ``forgather`` command line (``main``).
        project_dir: the project the commands work on (``project DIR`` changes it).
        config: the selected config (``config NAME`` changes it), or ``None``.
        traceback: pass ``--traceback`` with every line.
        extra_args: more words put before every line (``-D``/``--set`` given with ``-i``).
    """

    intro = (
        "Forgather shell. Type a command as after `forgather` (ls, pp, code ...); "
        "'config NAME' selects a config, 'project DIR' a project, 'help', 'quit'."
    )

    def __init__(
        self,
        run_line: Callable[[list[str]], int],
        project_dir: str = ".",
        config: str | None = None,
        traceback: bool = False,
        extra_args: list[str] | None = None,
    ):
        super().__init__()
        self.run_line = run_line
        self.project_dir = project_dir
        self.config = config
        self.traceback = traceback
        self.extra_args = list(extra_args or [])  # -D/--set given with -i
        self._config_names: list[str] | None = None
        self._update_prompt()

    def _update_prompt(self) -> None:
        name = os.path.basename(os.path.abspath(self.project_dir))
        config = f" [{self.config}]" if self.config else ""
        self.prompt = f"forgather:{name}{config}> "

    def _prefix(self, command: str | None = None) -> list[str]:
        words = ["-p", self.project_dir]
        uses_config = command not in READS_NO_CONFIG
        if self.config and uses_config:
            words += ["-t", self.config]
        if self.traceback:
            words.append("--traceback")
        return words + (self.extra_args if uses_config else [])

    # -- commands ---------------------------------------------------------------

    def default(self, line: str) -> None:
        try:
            words = shlex.split(line)
        except ValueError as err:
            print(f"error: {err}")
            return
        if "-i" in words or "--interactive" in words:
            print("error: already in the interactive shell")
            return
        self.run_line(self._prefix(words[0] if words else None) + words)

    def emptyline(self) -> bool:
        return False  # do not repeat the last command

    def do_config(self, arg: str) -> None:
        """config [NAME]: select the config the next commands use (none: show it)."""
        if arg.strip():
            if self._config_names is None or arg.strip() not in self._config_names:
                problem = self._config_problem(arg.strip())
                if problem:
                    print(f"error: {problem}")
                    return
            self.config = arg.strip()
            self._update_prompt()
        else:
            print(self.config or "(the project's default config)")

    def do_project(self, arg: str) -> None:
        """project DIR: work on another project directory, relative to this one (project
        create|show|new_config: the `project` command)."""
        if arg.split()[:1] and arg.split()[0] in _PROJECT_SUBCOMMANDS:
            self.default(f"project {arg}")
            return
        # Relative to the current project, as a shell's cd is to its directory.
        directory = os.path.join(self.project_dir, os.path.expanduser(arg.strip() or "."))
        if not os.path.isdir(directory):
            print(f"error: no directory {arg.strip()!r}")
            return
        self.project_dir = os.path.normpath(directory)
        self.config = None
        self._config_names = None
        self._update_prompt()

    do_cd = do_project  # the original shell's spelling

    def do_pwd(self, arg: str) -> None:
        """pwd: print the project directory."""
        print(os.path.abspath(self.project_dir))

    def do_configs(self, arg: str) -> None:
        """configs: list the project's configs."""
        self.run_line(["-p", self.project_dir, "ls"])

    def do_commands(self, arg: str) -> None:
        """commands: list the forgather commands."""
        print(command_listing())

    def do_debug(self, arg: str) -> None:
        """debug: show the traceback of each error from now on (again: stop)."""
        self.traceback = not self.traceback
        print(f"tracebacks {'on' if self.traceback else 'off'}")

    def do_edit(self, arg: str) -> None:
        """edit [PATH]: open PATH, or the selected config's file, in $VISUAL or $EDITOR."""
        from forgather.cli.context import open_in_editor
        from forgather.cli.errors import CLIError, format_error
        from forgather.config import ConfigError

        try:
            path = arg.strip() or self._config_file()
            open_in_editor(os.path.expanduser(path))
        except (CLIError, ConfigError) as err:  # the shell goes on
            print(f"error: {format_error(err)}")

    def _config_problem(self, name: str) -> str | None:
        """Why ``name`` is not a config of the current project (None: it is)."""
        from forgather.cli.errors import format_error
        from forgather.config import ConfigError
        from forgather.project import Project

        try:
            project = Project.open(self.project_dir)
            if project.has_config(name):
                return None
        except ConfigError as err:
            return format_error(err)
        return f"no config {name!r} in this project (configs lists them)"

    def _config_file(self) -> str:
        """The file of the selected config (else the project's default)."""
        from forgather.cli.errors import CLIError
        from forgather.project import Project

        project = Project.open(self.project_dir)
        name = self.config or project.default_config()
        if name is None:
            raise CLIError("no config selected and no default_config: use edit PATH")
        template = project.template_name(name)
        if os.path.isabs(template):
            return template
        for directory in project.meta.searchpath:
            candidate = os.path.join(directory, template)
            if os.path.isfile(candidate):
                return candidate
        raise CLIError(f"no file for config {name!r}")

    def do_help(self, arg: str) -> None:
        """help [COMMAND]: list commands, or show one command's options."""
        if arg.strip() in COMMANDS:
            self.run_line([*self._prefix(), arg.strip(), "--help"])
            return
        if arg.strip():
            print(f"no command {arg.strip()!r}; the commands are:")
        print(command_listing(_SHELL_COMMANDS))

    def do_quit(self, arg: str) -> bool:
        """quit: leave the shell."""
        return True

    do_exit = do_quit

    def do_EOF(self, arg: str) -> bool:  # noqa: N802 (cmd's name for Ctrl-D)
        print()
        return True

    # -- completion -------------------------------------------------------------

    def completenames(self, text: str, *ignored) -> list[str]:
        names = [*COMMANDS, *(name for name, _ in _SHELL_COMMANDS), "cd", "help"]
        return [n for n in names if n.startswith(text)]

    def completedefault(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        words = line[:begidx].split()
        if words and (words[-1] in _CONFIG_WORDS or words[0] in _CONFIG_WORDS):
            return [n for n in self.config_names() if n.startswith(text)]
        return []

    def complete_config(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        return [n for n in self.config_names() if n.startswith(text)]

    def config_names(self) -> list[str]:
        """The project's config names (cached until ``project`` changes)."""
        if self._config_names is None:
            try:
                from forgather.project import list_configs, load_meta

                self._config_names = list_configs(load_meta(self.project_dir))
            except Exception:  # completion must never break the shell
                self._config_names = []
        return self._config_names


def _history_file() -> str:
    from platformdirs import user_state_dir

    return os.path.join(user_state_dir("forgather"), "shell_history")


def run_shell(global_options: argparse.Namespace, run_line: Callable[[list[str]], int]) -> int:
    """Run the shell until ``quit`` or end of input; returns exit code 0.

    Args:
        global_options: the options given with ``-i`` (``main.build_parser()``).
        run_line: runs one ``forgather`` command line: :func:`forgather.cli.main.main`.
    """
    shell = ForgatherShell(
        run_line,
        global_options.project_dir or ".",
        global_options.config_template,
        global_options.traceback,
        assignment_words(global_options.defines, global_options.sets),
    )
    try:
        import readline
    except ImportError:  # e.g. Windows without pyreadline: no history, no completion
        readline = None
    history = _history_file()
    if readline is not None:
        readline.set_completer_delims(" \t\n=")
        with contextlib.suppress(OSError):  # first run: no history yet
            readline.read_history_file(history)
    try:
        shell.cmdloop()
    except KeyboardInterrupt:
        print()
    finally:
        if readline is not None:
            try:
                os.makedirs(os.path.dirname(history), exist_ok=True)
                readline.set_history_length(1000)
                readline.write_history_file(history)
            except OSError:
                pass  # a read-only home must not turn a clean exit into an error
    return 0
