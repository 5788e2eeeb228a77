"""``forgather inf``: serve a model over an OpenAI-compatible API, and talk to it.

    forgather inf server -m output_models/tiny_llama              # port 8000
    forgather inf server -m output_models/tiny_llama -c -p 8001 --max-batch-size 32
    forgather inf server -m output_models/tiny_llama -c output_models/tiny_llama/runs/r/checkpoints/checkpoint-800
    forgather inf server -m output_models/tiny_llama -d cuda -T bf16 -s '<|im_end|>'
    forgather inf server samantha.yaml -p 8002                    # options from a YAML file
    forgather inf client                                          # interactive chat
    forgather inf client --completion "def fib(n):" --temperature 0 --max-tokens 40
    forgather inf client --health; forgather inf client --list-models

The options are the original Forgather's (``tools/inference_server``), and
both commands take its YAML file of options as an optional first argument:
keys are option names (``chat-template`` or ``chat_template``), and an option
given on the command line wins over the file, even one given its default value
(``-d cpu`` over ``device: cuda:0``): the parsers record which options were
given (``_GIVEN``), rather than guessing it from values equal to a default.
``from-checkpoint: true`` is bare ``-c`` (the newest checkpoint), ``false`` no ``-c``.

Decision a reader may question: this module only parses arguments into
``ServerSettings`` / ``ClientSettings`` and calls ``forgather.serve``, which
it imports inside the command, so ``forgather --help`` loads neither torch nor
FastAPI. ``python -m forgather.cli.inference server ...`` is ``forgather inf
server ...``: it runs through the same dispatcher, errors and exit codes
included.
"""

from __future__ import annotations

import argparse
import os
import sys

from forgather.cli.command import Command
from forgather.cli.dtypes import check_dtype
from forgather.cli.errors import CLIError

DESCRIPTION = """\
server: load a model directory (or, with -c, its newest checkpoint whose weights
fit the directory's config.json, or the checkpoint -c names; it says which) and
serve /v1/models, /v1/completions, /v1/chat/completions and /health; concurrent
requests are decoded together.
client: chat with a server interactively, or send one --message / --completion.
Both take an optional YAML file of their options first (command-line options win)."""

_ATTENTION = ("eager", "sdpa", "flash_attention_2", "flex_attention")
_GIVEN = "_options_given"  # Namespace attribute: the dests given on the command line


def _recording(base: type[argparse.Action]) -> type[argparse.Action]:
    """``base``, also noting its dest in the namespace's ``_GIVEN`` set when argparse calls it
    (for an option: only when it is on the command line)."""

    class Recording(base):  # type: ignore[misc, valid-type]
        def __call__(self, parser, namespace, values, option_string=None):
            super().__call__(parser, namespace, values, option_string)
            given = set(getattr(namespace, _GIVEN, ()))
            given.add(self.dest)
            setattr(namespace, _GIVEN, given)  # copied onto the main namespace with the rest

    return Recording


def _record_given(parser: argparse.ArgumentParser) -> None:
    """Make the actions ``parser`` adds from now on record that they were given."""
    for name in (None, "store", "store_true", "extend"):
        parser.register("action", name, _recording(parser._registry_get("action", name)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``server`` and ``client`` with their options to ``parser``."""
    sub = parser.add_subparsers(dest="inf_command", metavar="{server,client}", required=True)
    _server_arguments(sub.add_parser("server", help="serve a model (OpenAI-compatible API)"))
    _client_arguments(sub.add_parser("client", help="talk to a server"))


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``inf`` to an argparse subparsers object; return its parser."""
    parser = subparsers.add_parser("inf", help="serve a model, or talk to a server")
    add_arguments(parser)
    return parser


def _yaml_mapping(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise argparse.ArgumentTypeError(f"invalid YAML: {e}") from None


def _server_arguments(parser: argparse.ArgumentParser) -> None:
    _record_given(parser)
    parser.add_argument("config", nargs="?", metavar="CONFIG.yaml", help="YAML file of options")
    parser.add_argument("-m", "--model", metavar="PATH", help="model directory")
    parser.add_argument(
        "-c",
        "--from-checkpoint",
        nargs="?",
        const=True,
        default=False,
        metavar="CHECKPOINT",
        help="load the newest checkpoint-<step> below PATH that fits, or this checkpoint dir",
    )
    parser.add_argument("-a", "--attn-implementation", choices=_ATTENTION)
    parser.add_argument("-H", "--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=8000, help="default: 8000")
    parser.add_argument(
        "-d", "--device", default="cpu", help="cpu, cuda, cuda:1, auto, ... (default: cpu)"
    )
    parser.add_argument(
        "-T",
        "--dtype",
        default="auto",
        help="weights dtype: auto (as saved; default), float32/fp32, bfloat16/bf16, "
        "float16/fp16/half, float64/fp64/double",
    )
    parser.add_argument("-t", "--chat-template", metavar="FILE", help="Jinja chat template file")
    parser.add_argument(
        "-s",
        "--stop-sequences",
        nargs="*",
        default=[],
        metavar="TEXT",
        help="stop every request at these too (a special token such as '<|im_end|>' "
        "becomes a stop token)",
    )
    parser.add_argument(
        "-l", "--log-level", default="info", help="log level, any case (default: info)"
    )
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument(
        "--compile-args",
        type=_yaml_mapping,
        metavar="YAML",
        help="torch.compile keyword arguments, e.g. '{mode: reduce-overhead}'",
    )
    parser.add_argument(
        "--cache-implementation",
        help="KV cache: only 'dynamic' (this server's own batched cache)",
    )
    parser.add_argument(
        "--disable-kv-cache",
        action="store_true",
        help="no KV cache: recompute each sequence at every step (slow; for broken caches)",
    )
    parser.add_argument(
        "--max-batch-size", type=int, default=16, help="sequences decoded together (default: 16)"
    )
    parser.add_argument(
        "--max-batch-tokens",
        type=int,
        default=32768,
        help="token budget of running sequences, prompt + max_tokens (default: 32768)",
    )
    parser.add_argument(
        "--max-waiting",
        type=int,
        default=256,
        help="queued sequences before requests get 503, and most sequences one request "
        "may ask for (default: 256)",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=8 * 2**20,
        help="larger request bodies get 413 (default: 8 MiB)",
    )
    parser.add_argument(
        "--served-model-name", metavar="NAME", help="model name for clients (default: dir name)"
    )


def _client_arguments(parser: argparse.ArgumentParser) -> None:
    _record_given(parser)
    parser.add_argument("config", nargs="?", metavar="CONFIG.yaml", help="YAML file of options")
    parser.add_argument(
        "--url",
        default="http://127.0.0.1:8000",
        help="server URL, /v1 optional (default: %(default)s)",
    )
    parser.add_argument("--model", help="model name (default: the server's first)")
    parser.add_argument(
        "--interactive", action="store_true", help="chat (after --message, if given)"
    )
    once = parser.add_mutually_exclusive_group()
    once.add_argument("--completion", metavar="TEXT", help="complete TEXT and exit")
    once.add_argument("--message", metavar="TEXT", help="send one chat message and exit")
    parser.add_argument("--system", metavar="TEXT", help="system message for chat")
    parser.add_argument("--max-tokens", type=int, help="most tokens per answer")
    parser.add_argument("--temperature", type=float, help="0 = greedy")
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--stop",
        nargs="*",
        action="extend",
        default=[],
        metavar="TEXT",
        help="stop strings (--stop a b, or --stop a --stop b)",
    )
    parser.add_argument(
        "--echo", action="store_true", help="completion: print the prompt first (the default)"
    )
    parser.add_argument(
        "--no-echo", action="store_true", help="completion: print only the generated text"
    )
    parser.add_argument(
        "--show-usage", action="store_true", help="print token counts after each answer"
    )
    parser.add_argument(
        "--repetition-penalty", type=float, help="e.g. 1.1 discourages repeating tokens"
    )
    parser.add_argument(
        "--no-repeat-ngram-size", type=int, metavar="N", help="never repeat an N-gram"
    )
    parser.add_argument(
        "--num-beams", type=int, help="beam search (this server: 1 only; others get an error)"
    )
    parser.add_argument(
        "--min-length", type=int, help="no end of text before prompt + answer has this many tokens"
    )
    parser.add_argument("--stream", action="store_true", help="stream (the default)")
    parser.add_argument("--no-stream", action="store_true", help="wait for whole answers")
    parser.add_argument("--health", action="store_true", help="check that the server answers")
    parser.add_argument("--list-models", action="store_true", help="list the server's models")


def apply_config_file(args: argparse.Namespace) -> None:
    """Fill the options of ``inf server``/``inf client`` not given on the command line from
    ``args.config`` (a YAML mapping of option names to values), in place.

    Args:
        args: as parsed by the parser :func:`add_arguments` set up, with ``config`` set.

    Raises:
        CLIError: the file cannot be read, is not a mapping, or has an unknown option or a
            value the option would refuse on the command line.
    """
    parser = argparse.ArgumentParser()
    (_server_arguments if args.inf_command == "server" else _client_arguments)(parser)
    _apply_config_file(args, parser)


def _apply_config_file(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Fill options not given on the command line from ``args.config`` (a YAML mapping)."""
    import yaml

    path = os.path.expanduser(args.config)
    try:
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f) or {}
    except OSError as e:
        raise CLIError(f"cannot read {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise CLIError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(values, dict):
        raise CLIError(f"{path} must hold a mapping of option names to values")
    actions = {a.dest: a for a in parser._actions if a.dest not in ("help", "config")}
    for key, value in values.items():
        dest = str(key).replace("-", "_")
        if dest not in actions:
            known = ", ".join(sorted(d.replace("_", "-") for d in actions))
            raise CLIError(f"{path}: unknown option {key!r} (options: {known})")
        if dest not in getattr(args, _GIVEN, ()):  # the command line wins, default or not
            setattr(args, dest, _option_value(f"{path}: {key}", actions[dest], value))


def _option_value(where: str, action: argparse.Action, value):
    """A config file's ``value`` for ``action``, checked as argparse checks the command line's."""
    if action.nargs == 0:  # a flag
        if not isinstance(value, bool):
            raise CLIError(f"{where}: expected true or false, got {value!r}")
        return value
    if value is None:
        return None
    if isinstance(value, bool) and action.nargs == "?" and action.const is not None:
        return action.const if value else action.default  # from-checkpoint: true = bare -c
    if action.nargs in ("*", "+") or isinstance(action.nargs, int):
        items = [value] if isinstance(value, (str, int, float)) else value
        if not isinstance(items, list):
            raise CLIError(f"{where}: expected a list, got {value!r}")
        return [_option_value(where, _one_value(action), item) for item in items]
    if isinstance(value, (dict, list, bool)):
        raise CLIError(f"{where}: expected one value, got {value!r}")
    try:
        converted = action.type(str(value)) if action.type is not None else str(value)
    except (ValueError, TypeError, argparse.ArgumentTypeError) as e:
        raise CLIError(f"{where}: invalid value {value!r} ({e})") from None
    if action.choices is not None and converted not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise CLIError(f"{where}: invalid choice {value!r} (choose from {choices})")
    return converted


def _one_value(action: argparse.Action) -> argparse.Action:
    """``action`` as if it took one value (to check the items of a list option)."""
    return argparse.Action(
        action.option_strings, action.dest, type=action.type, choices=action.choices
    )


def _check_device(device: str | None) -> None:
    """A device this torch has (``-d cuda`` on a CPU-only build failed deep in loading)."""
    import torch

    if device and device.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"--device {device}: this torch build sees no CUDA device; use --device cpu")


def _check_port(host: str, port: int) -> None:
    """That ``host:port`` can be listened on now (0 picks a free port: nothing to check)."""
    import socket

    if not port:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise CLIError(f"--host {host}: {e.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds it
        try:
            probe.bind(address)
        except OSError as e:
            raise CLIError(f"cannot listen on {host}:{port}: {e.strerror}") from None


def run(args: argparse.Namespace) -> int:
    """Run ``inf server`` or ``inf client``; return the exit code."""
    if args.config:
        apply_config_file(args)
    if args.inf_command == "server":
        return _server(args)
    return _client(args)


def _server(args: argparse.Namespace) -> int:
    from forgather.serve import ServerSettings, serve
    from forgather.serve.loading import WeightsNotFound

    if not args.model:
        raise CLIError(
            "inf server needs -m/--model PATH (on the command line or in the config file)"
        )
    check_dtype(str(args.dtype), "-T/--dtype", auto=True)  # a usage error, as `model --dtype`
    _check_device(args.device)
    _check_port(args.host, args.port)  # before minutes of loading, not after
    checkpoint = args.from_checkpoint
    if isinstance(checkpoint, str):
        checkpoint = os.path.expanduser(checkpoint)
    settings = ServerSettings(
        model_path=os.path.expanduser(args.model),
        checkpoint=checkpoint,
        host=args.host,
        port=args.port,
        device=args.device,
        dtype=args.dtype,
        max_batch_size=args.max_batch_size,
        max_batch_tokens=args.max_batch_tokens,
        max_waiting=args.max_waiting,
        max_body_bytes=args.max_body_bytes,
        chat_template=args.chat_template and os.path.expanduser(args.chat_template),
        served_model_name=args.served_model_name,
        log_level=str(args.log_level).lower(),
        attn_implementation=args.attn_implementation,
        stop_sequences=tuple(args.stop_sequences or ()),
        compile=args.compile,
        compile_args=args.compile_args,
        cache_implementation=args.cache_implementation,
        use_cache=not args.disable_kv_cache,
    )
    try:
        serve(settings)
    except (WeightsNotFound, ValueError) as err:  # what is missing, where, what to do: one line
        raise CLIError(str(err)) from None
    return 0


def _client(args: argparse.Namespace) -> int:
    from forgather.serve.client import ClientSettings, run_client

    if args.echo and args.no_echo:
        raise CLIError("--echo and --no-echo contradict each other")
    return run_client(
        ClientSettings(
            url=args.url,
            model=args.model,
            completion=args.completion,
            message=args.message,
            system=args.system,
            max_tokens=args.max_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            seed=args.seed,
            stop=list(args.stop or ()),
            stream=not args.no_stream,
            echo=not args.no_echo,
            show_usage=args.show_usage,
            interactive=args.interactive,
            repetition_penalty=args.repetition_penalty,
            no_repeat_ngram_size=args.no_repeat_ngram_size,
            num_beams=args.num_beams,
            min_length=args.min_length,
            health=args.health,
            list_models=args.list_models,
        )
    )


COMMANDS = {
    "inf": Command(
        run=lambda ctx, args: run(args), add_arguments=add_arguments, description=DESCRIPTION
    ),
}


if __name__ == "__main__":  # python -m forgather.cli.inference ARGS: forgather inf ARGS
    from forgather.cli.main import main

    sys.exit(main(["inf", *sys.argv[1:]]))
