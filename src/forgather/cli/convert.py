"""``forgather convert`` and ``forgather update-vocab``: the original Forgather's
spelling, reserved until the commands arrive.

    forgather convert ~/models/llama output_models/llama_fg --dtype bfloat16
    forgather update-vocab --add-tokens tokens.yaml ~/models/llama ~/models/llama_updated

Both parse exactly the options the original Forgather's commands take, so a
script written for it fails with one line saying why, not with a usage error
about an option, and exit with status 2.

Decision a reader may question: the options are declared even though nothing
uses them yet. A misspelt option is then still a usage error, and
``forgather convert --help`` documents what the command will take once
issue 16 ("Bring your own data and model") lands.
"""

from __future__ import annotations

import argparse
import sys

from forgather.cli.command import Command
from forgather.cli.context import CommandContext
from forgather.cli.errors import EXIT_USAGE

NOT_YET = "arrives with issue 16 'Bring your own data and model'"
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _convert_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src_model_path", help="model to convert (Hugging Face or Forgather)")
    parser.add_argument("dst_model_path", help="where the converted model goes")
    parser.add_argument("--reverse", action="store_true", help="Forgather -> Hugging Face")
    parser.add_argument("--model-type", choices=("llama", "mistral", "qwen3"), default="llama")
    parser.add_argument("--dtype", help="dtype of the saved weights")
    parser.add_argument("--max-length", type=int, help="maximum sequence length")
    parser.add_argument("-c", "--checkpoint-path", help="load weights from this checkpoint")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("-g", "--generation-test", action="store_true")
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--prompt", help="prompt of the generation test")
    parser.add_argument("--debug-params", action="store_true")
    # -t is the common -t/--config-template here (dispatch adds it to every command);
    # convert loads no config, so `-t FILE` is accepted either way.
    parser.add_argument("--chat-template-path", help="chat template file (the original's -t)")
    parser.add_argument("--add-tokens", metavar="YAML", help="tokens to add to the vocabulary")
    parser.add_argument("--skip-default-tokens", action="store_true")
    parser.add_argument("--converter-path", action="append", default=[])
    parser.add_argument("--log-level", choices=_LOG_LEVELS, default="INFO")


def _update_vocab_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_path", help="model to update (Hugging Face or Forgather)")
    parser.add_argument("output_path", help="where the updated model goes")
    parser.add_argument("--add-tokens", metavar="YAML", help="tokens to add to the vocabulary")
    parser.add_argument("--skip-default-tokens", action="store_true")
    parser.add_argument("--save-format", choices=("huggingface", "sharded"), default="huggingface")
    parser.add_argument("--safetensors", action="store_true")
    parser.add_argument("--dtype")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.add_argument("--log-level", choices=_LOG_LEVELS, default="INFO")
    parser.add_argument("--dry-run", action="store_true")


def _not_yet(name: str):
    def run(ctx: CommandContext, args: argparse.Namespace) -> int:
        print(f"forgather: error: {name} is not yet available: {NOT_YET}", file=sys.stderr)
        return EXIT_USAGE

    return run


COMMANDS = {
    "convert": Command(
        run=_not_yet("convert"),
        add_arguments=_convert_arguments,
        description="Convert between Hugging Face and Forgather model formats (not yet: "
        + NOT_YET
        + ").",
    ),
    "update-vocab": Command(
        run=_not_yet("update-vocab"),
        add_arguments=_update_vocab_arguments,
        description="Add tokens to a model's vocabulary (not yet: " + NOT_YET + ").",
    ),
}
