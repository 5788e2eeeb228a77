"""``forgather inf``: serve a model over an OpenAI-compatible API, and talk to it.

    forgather inf server -m output_models/tiny_llama              # port 8000
    forgather inf server -m output_models/tiny_llama -c --port 8001 --max-batch-size 32
    forgather inf server -m output_models/tiny_llama --device cuda --dtype bfloat16
    forgather inf client                                          # interactive chat
    forgather inf client --completion "def fib(n):" --temperature 0 --max-tokens 40

Decision a reader may question: this module only parses arguments into
``ServerSettings`` / ``ClientSettings`` and calls ``forgather.serve``, which
it imports inside the command, so ``forgather --help`` loads neither torch nor
FastAPI. ``python -m forgather.cli.inference server ...`` is ``forgather inf
server ...``: it runs through the same dispatcher, errors and exit codes
included.
"""

from __future__ import annotations

import argparse

from forgather.cli.command import Command
from forgather.cli.errors import CLIError

DESCRIPTION = """\
server: load a model directory (or, with -c, its newest checkpoint whose weights
fit the directory's config.json; it says which) and serve
/v1/models, /v1/completions, /v1/chat/completions and /health; concurrent
requests are decoded together.
client: chat with a server interactively, or send one --message / --completion."""


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


def _server_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", required=True, metavar="PATH", help="model directory")
    parser.add_argument(
        "-c",
        "--from-checkpoint",
        action="store_true",
        help="load the newest checkpoint-<step> below PATH",
    )
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="default: 8000")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default: cpu)")
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="weights dtype (default: as saved)",
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
    parser.add_argument("--chat-template", metavar="FILE", help="Jinja chat template file")
    parser.add_argument(
        "--served-model-name", metavar="NAME", help="model name for clients (default: dir name)"
    )
    parser.add_argument("--log-level", default="info", help="uvicorn log level (default: info)")


def _client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default="http://127.0.0.1:8000", help="server URL (default: %(default)s)"
    )
    parser.add_argument("--model", help="model name (default: the server's first)")
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
        "--stop", action="append", default=[], metavar="TEXT", help="stop string; repeatable"
    )
    parser.add_argument("--no-stream", action="store_true", help="wait for whole answers")


def run(args: argparse.Namespace) -> int:
    """Run ``inf server`` or ``inf client``; return the exit code."""
    if args.inf_command == "server":
        from forgather.serve import ServerSettings, serve
        from forgather.serve.loading import WeightsNotFound

        try:
            serve(
                ServerSettings(
                    model_path=args.model,
                    checkpoint=args.from_checkpoint,
                    host=args.host,
                    port=args.port,
                    device=args.device,
                    dtype=args.dtype,
                    max_batch_size=args.max_batch_size,
                    max_batch_tokens=args.max_batch_tokens,
                    max_waiting=args.max_waiting,
                    max_body_bytes=args.max_body_bytes,
                    chat_template=args.chat_template,
                    served_model_name=args.served_model_name,
                    log_level=args.log_level,
                )
            )
        except WeightsNotFound as err:  # what is missing, where, what to do: one line
            raise CLIError(str(err)) from None
        return 0
    from forgather.serve.client import ClientSettings, run_client

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
            stop=args.stop,
            stream=not args.no_stream,
        )
    )


COMMANDS = {
    "inf": Command(
        run=lambda ctx, args: run(args), add_arguments=add_arguments, description=DESCRIPTION
    ),
}


if __name__ == "__main__":  # python -m forgather.cli.inference ARGS: forgather inf ARGS
    import sys

    from forgather.cli.main import main

    sys.exit(main(["inf", *sys.argv[1:]]))
