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

from forgather.cli.registry import COMMANDS, assignment_words, command_listing

_CONFIG_WORDS = {"-t", "--config-template", "config", "diff"}
_SHELL_COMMANDS = (
    ("config", "select a config (config NAME)"),
    ("project", "select a project directory (project DIR)"),
    ("quit", "leave the shell (also Ctrl-D)"),
)


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

    def _prefix(self) -> list[str]:
        words = ["-p", self.project_dir]
        if self.config:
            words += ["-t", self.config]
        if self.traceback:
            words.append("--traceback")
        return words + self.extra_args

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
        self.run_line(self._prefix() + words)

    def emptyline(self) -> bool:
        return False  # do not repeat the last command

    def do_config(self, arg: str) -> None:
        """config [NAME]: select the config the next commands use (none: show it)."""
        if arg.strip():
            self.config = arg.strip()
            self._update_prompt()
        else:
            print(self.config or "(the project's default config)")

    def do_project(self, arg: str) -> None:
        """project DIR: work on another project directory."""
        if not os.path.isdir(arg.strip() or "."):
            print(f"error: no directory {arg.strip()!r}")
            return
        self.project_dir = arg.strip() or "."
        self.config = None
        self._config_names = None
        self._update_prompt()

    def do_help(self, arg: str) -> None:
        """help [COMMAND]: list commands, or show one command's options."""
        if arg.strip() in COMMANDS:
            self.run_line([*self._prefix(), arg.strip(), "--help"])
            return
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
        names = [*COMMANDS, "config", "project", "help", "quit"]
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
