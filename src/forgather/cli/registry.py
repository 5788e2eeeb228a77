"""What the command line offers, without importing any command: the command
table and the options every command shares.

    COMMANDS["pp"]          # ("forgather.cli.show", "the config's rendered YAML")
    load_command("pp")      # imports forgather.cli.show, returns its Command
    print(command_listing())

``main.py`` builds ``forgather --help`` from this module, ``dispatch.py`` runs
a command through it and ``shell.py`` lists and completes command names from
it; none of them imports another to learn what the commands are.

Adding a command: write a module ``forgather/cli/<group>.py`` that defines
``COMMANDS = {"name": Command(run=..., add_arguments=..., uses_config=...)}``
(see :mod:`forgather.cli.command`) and register each name in the table
``COMMANDS`` below as ``"name": ("forgather.cli.<group>", "one-line help")``.
Nothing else changes: ``--help``, the interactive shell and its completion
read the table. Import heavy packages (torch, transformers) inside ``run``,
never at module level.

Decision a reader may question: the options accepted both before and after a
command name (``-p``, ``-t``, ``-D``, ``--set``, ``-o``, ``-e``, ``--no-dyn``,
``--trust``) are defined here, next to the table, rather than in ``main.py``
beside the global parser. The global parser (``main.py``) and every command's
parser (``dispatch.py``) add them, and ``forgather --help`` must import this
module only: a module of its own would cost ``--help`` another import, and
keeping them in ``main.py`` would make ``dispatch.py`` import the entry point
that imports it.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (a few ms on --help)
if TYPE_CHECKING:
    import argparse

    from forgather.cli.command import Command

# name -> (module defining it, one-line help). Keep in the order users learn them.
COMMANDS: dict[str, tuple[str, str]] = {
    "ls": ("forgather.cli.listing", "list the project's configs (-r: every project below)"),
    "index": ("forgather.cli.listing", "project overview as Markdown"),
    "meta": ("forgather.cli.listing", "resolved meta.yaml values and template search path"),
    "tlist": ("forgather.cli.listing", "every template on the search path, by directory"),
    "pp": ("forgather.cli.show", "the config's rendered YAML"),
    "why": ("forgather.cli.show", "where a config value was set, and what it overrode"),
    "trefs": ("forgather.cli.show", "templates the config extends, includes and imports"),
    "targets": ("forgather.cli.show", "the config's buildable targets"),
    "diff": ("forgather.cli.show", "unified diff of two configs' rendered YAML"),
    "code": ("forgather.cli.build", "Python source that builds a target"),
    "construct": ("forgather.cli.build", "build a target and print the object"),
    "check": ("forgather.cli.build", "check SPECs and call arguments without building"),
    "graph": ("forgather.cli.build", "the node graph as Graphviz DOT, SVG or Mermaid"),
    "ws": ("forgather.cli.workspace", "create a workspace (ws init) or a project (ws project)"),
    "project": (
        "forgather.cli.project_cmd",
        "create a project, show it, or add a config (the original's command)",
    ),
    "model": (
        "forgather.cli.model",
        "build a model config and show it (construct) or train a few steps (test)",
    ),
    "train": ("forgather.cli.train", "train: in this process, or on several with torchrun"),
    "sweep": ("forgather.cli.sweep", "train over a grid or random sample of -D/--set values"),
    "tb": ("forgather.cli.train", "TensorBoard on the config's runs"),
    "plot": ("forgather.cli.train", "plot a run's loss and learning-rate curves"),
    "checkpoint": (
        "forgather.cli.train",
        "list checkpoints, or link the newest into the model dir",
    ),
    "dataset": ("forgather.cli.data", "split sizes, decoded examples and token-length histograms"),
    "tokenizer": ("forgather.cli.data", "train a byte-level BPE tokenizer on local text"),
    "inf": ("forgather.cli.inference", "serve a model (OpenAI-compatible API), or talk to one"),
    "control": (
        "forgather.cli.control",
        "list, inspect, save, stop or abort running training jobs",
    ),
    "convert": ("forgather.cli.convert", "convert a model between HuggingFace and Forgather"),
    "update-vocab": ("forgather.cli.convert", "add tokens to a model's vocabulary"),
    "merge-lora": ("forgather.cli.finetune", "merge a LoRA adapter into its base model"),
}


def load_command(name: str) -> Command:
    """Import the module that defines command ``name`` and return its :class:`Command`."""
    import importlib

    module_name, _ = COMMANDS[name]
    return importlib.import_module(module_name).COMMANDS[name]


def command_listing(extra: tuple[tuple[str, str], ...] = ()) -> str:
    """One ``  name  help`` line per command (then per ``extra`` pair), names aligned."""
    rows = [(name, text) for name, (_, text) in COMMANDS.items()] + list(extra)
    width = max(len(name) for name, _ in rows) + 2
    return "\n".join(f"  {name:<{width}}{text}" for name, text in rows)


#: Commands that read no project or config, with what their refusal of ``-t`` adds: they
#: take only their own options after their name (``convert -t`` is its chat template, as
#: in the original), ``-t``/``-D``/``--set`` before it are errors (``dispatch.py``), and
#: the interactive shell leaves its selected config and variables off their lines.
READS_NO_CONFIG = {
    "control": "",
    "convert": " (a chat template goes after the command: convert SRC DST -t FILE)",
    "update-vocab": "",
}


def add_common_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                       prefix: str = "") -> None:  # fmt: skip
    """Add the options accepted both before and after the command name.

    Args:
        parser: the global parser, a command's parser or an argument group.
        prefix: prepended to each ``dest`` (a command's parser uses ``cmd_``,
            so its values do not hide the global ones).
    """
    parser.add_argument(
        "-p", "--project-dir", dest=prefix + "project_dir", metavar="DIR", help="project directory"
    )
    parser.add_argument(
        "-t",
        "--config-template",
        dest=prefix + "config_template",
        metavar="CONFIG",
        help="config name (default: the project's default_config)",
    )
    parser.add_argument(
        "-D",
        dest=prefix + "defines",
        action="append",
        metavar="NAME=VALUE",
        help="template variable (value parsed as YAML); repeatable",
    )
    parser.add_argument(
        "--set",
        dest=prefix + "sets",
        action="append",
        metavar="PATH=VALUE",
        help="override a config value after loading, e.g. main.args.0=1; repeatable",
    )
    parser.add_argument(
        "-o",
        "--output",
        "--output-file",
        dest=prefix + "output",
        metavar="FILE",
        help="write output to FILE",
    )
    parser.add_argument(
        "-e",
        "--edit",
        dest=prefix + "edit",
        action="store_true",
        help="write output to ./tmp/ and open it in $VISUAL or $EDITOR",
    )
    parser.add_argument(
        "--no-dyn",
        dest=prefix + "no_dyn",
        action="store_true",
        help="ignore the options the config declares (dynamic_args)",
    )
    parser.add_argument(
        "--trust",
        dest=prefix + "trust",
        action="store_true",
        help="let the config import any module, for this command only (docs/security.md)",
    )


def assignment_words(defines: list[str] | None, sets: list[str] | None) -> list[str]:
    """``-D`` and ``--set`` values as command-line words (``["-D", "x=1", "--set", "a.b=2"]``)."""
    words = [w for item in defines or () for w in ("-D", item)]
    return words + [w for item in sets or () for w in ("--set", item)]
