"""``forgather inf server|client`` as processes: the server command serves a model
directory (and its newest checkpoint that fits with -c, saying which), or says in
one line that there are no weights; the client command prints streamed and whole
answers; interactive chat keeps and resets its history."""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_model

from forgather.cli.inference import COMMANDS, add_parser
from forgather.serve.client import ChatSession, ClientSettings, interactive
from forgather.serve.server import free_port
from tests.serve.conftest import MODEL_NAME, greedy_reference, wait_until

INFERENCE = [sys.executable, "-m", "forgather.cli.inference"]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=1) as response:
            return json.load(response)["status"] == "ok"
    except OSError:
        return False


@pytest.fixture(scope="module")
def server_process(model_dir, tmp_path_factory):
    """``inf server -c`` on a copy of the model with a weights-only checkpoint of it,
    and a newer checkpoint of another model that the server must pass over."""
    root = tmp_path_factory.mktemp("cli") / "tiny"
    shutil.copytree(model_dir, root)
    checkpoint = root / "checkpoints" / "checkpoint-3"
    checkpoint.mkdir(parents=True)
    shutil.copy(root / "model.safetensors", checkpoint / "model.safetensors")
    other = root / "checkpoints" / "checkpoint-9"
    other.mkdir()
    save_model(torch.nn.Linear(2, 2), str(other / "model.safetensors"))
    log = open(root.parent / "server.log", "w+")  # noqa: SIM115 - closed below
    port = free_port()
    process = subprocess.Popen(
        [
            *INFERENCE,
            "server",
            "-m",
            str(root),
            "-c",
            "--port",
            str(port),
            "--max-batch-size",
            "4",
            "--served-model-name",
            "served-tiny",
            "--log-level",
            "warning",
        ],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _healthy(url) or process.poll() is not None, timeout=120)
    assert process.poll() is None, "the server exited"
    yield url
    process.send_signal(signal.SIGINT)  # uvicorn shuts down gracefully
    assert process.wait(timeout=30) == 0
    log.close()


def test_server_says_which_checkpoint_it_serves(server_process):
    with urllib.request.urlopen(server_process + "/v1/models", timeout=10) as response:
        (card,) = json.load(response)["data"]
    assert card["id"] == "served-tiny"
    assert card["root"].endswith(os.path.join("tiny", "checkpoints", "checkpoint-3"))
    log = (Path(card["root"]).parents[2] / "server.log").read_text()
    assert f"loaded weights from {card['root']} (step 3)" in log
    assert "skipping checkpoints/checkpoint-9: its weights do not fit the model" in log


def test_server_on_a_model_directory_without_weights_fails_in_one_line(model_dir, tmp_path):
    root = tmp_path / "tiny"
    shutil.copytree(model_dir, root, ignore=shutil.ignore_patterns("model.safetensors"))
    result = subprocess.run(
        [sys.executable, "-m", "forgather.cli", "inf", "server", "-m", str(root),
         "--port", str(free_port())],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stderr == (
        f"forgather: error: no weights in {root} (no model.safetensors): train the model first, "
        "link a checkpoint into it (forgather checkpoint link), or serve its newest checkpoint "
        "with -c\n"
    )


def _server_error(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "forgather.cli", "inf", "server", *args],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    return result.stderr


def test_server_refuses_at_once_what_it_could_not_serve(model_dir, tmp_path):
    import socket

    assert _server_error("-m", str(tmp_path), "--port", str(free_port())) == (
        f"forgather: error: {tmp_path} is not a model directory: it has no config.json\n"
    )
    adapter = tmp_path / "adapter"  # what LoRA fine-tuning leaves: no config.json
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    assert f"it is a LoRA adapter: merge it into its base model first (forgather merge-lora " \
        f"{adapter} MERGED_DIR)" in _server_error("-m", str(adapter))  # fmt: skip
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert _server_error("-m", str(model_dir), "--port", str(port)) == (
            f"forgather: error: cannot listen on 127.0.0.1:{port}: Address already in use\n"
        )
    if not torch.cuda.is_available():  # (on a GPU machine cuda is a device it has)
        assert "this torch build sees no CUDA device" in _server_error(
            "-m", str(model_dir), "--device", "cuda", "--port", str(free_port())
        )


def _client(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*INFERENCE, "client", "--url", url, *args], capture_output=True, text=True, timeout=60
    )


def test_client_completion_prints_the_greedy_text(server_process, model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    expected, _ = greedy_reference(model, tokenizer, tokenizer("def")["input_ids"], 8)
    streamed = _client(
        server_process, "--completion", "def", "--temperature", "0", "--max-tokens", "8"
    )
    assert streamed.returncode == 0, streamed.stderr
    assert streamed.stdout == "def" + expected + "\n"  # the prompt first (echo), as the original
    whole = _client(
        server_process,
        "--completion",
        "def",
        "--temperature",
        "0",
        "--max-tokens",
        "8",
        "--no-stream",
        "--no-echo",
        "--show-usage",
    )
    assert whole.stdout.startswith(expected + "\n[1 prompt + ")


def test_client_message_and_server_error(server_process):
    answer = _client(server_process, "--message", "hi", "--max-tokens", "5", "--seed", "1")
    assert answer.returncode == 0 and answer.stdout.endswith("\n"), answer.stderr
    wrong = _client(server_process, "--message", "hi", "--model", "other")
    assert wrong.returncode == 1
    assert "404" in wrong.stderr and "served-tiny" in wrong.stderr
    unreachable = _client(f"http://127.0.0.1:{free_port()}", "--message", "hi")
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr


def test_interactive_chat_keeps_and_resets_history(server):
    lines = iter(["hello", "and more", "/reset", "again", "/quit", "never read"])
    out = io.StringIO()
    session = ChatSession(ClientSettings(url=server.url, max_tokens=4, system="Be brief."), out)
    interactive(session, read=lambda prompt: next(lines))
    roles = [message["role"] for message in session.history]
    assert roles == ["system", "user", "assistant"]
    assert session.history[1]["content"] == "again"
    assert out.getvalue().startswith(f"chatting with {MODEL_NAME}")
    assert next(lines) == "never read"


def test_parser_registration():
    parser = argparse.ArgumentParser(prog="forgather")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["inf", "server", "-m", "out/tiny", "-c", "--dtype", "bfloat16"])
    assert (args.model, args.from_checkpoint, args.dtype, args.port) == (
        "out/tiny",
        True,
        "bfloat16",
        8000,
    )
    args = parser.parse_args(["inf", "client", "--stop", "a", "--stop", "b", "--top-k", "3"])
    assert args.stop == ["a", "b"] and args.top_k == 3
    assert set(COMMANDS) == {"inf"}
