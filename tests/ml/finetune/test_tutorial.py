"""examples/tutorials/finetune_chat/README.md, run as written (with tiny sizes and
a free port): make a base model, convert it, fine-tune with LoRA on the shipped
chat data, merge, serve, and ask through the openai client's chat call."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("peft")

ROOT = Path(__file__).parents[3]
TUTORIAL = ROOT / "examples" / "tutorials" / "finetune_chat"
BIN = Path(sys.executable).parent
TINY = ["-D", "block_size=64", "-D", "batch_size=4"]


def readme_commands() -> list[list[str]]:
    block = re.search(r"```bash\n(.*?)```", (TUTORIAL / "README.md").read_text(), re.S).group(1)
    return [line.split() for line in block.strip().splitlines()]


def executable(command: list[str]) -> list[str]:
    """`python` and `forgather` of this venv, quotes removed from arguments."""
    program = sys.executable if command[0] == "python" else str(BIN / command[0])
    return [program, *(arg.strip("\"'") for arg in command[1:])]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300,
                          stdin=subprocess.DEVNULL)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.mark.slow
def test_tutorial_commands_run_as_written(tmp_path):
    cd, make, convert, train, merge, serve, ask = readme_commands()
    assert cd == ["cd", "examples/tutorials/finetune_chat"] and serve[:3] == [
        "forgather",
        "inf",
        "server",
    ]
    shutil.copytree(ROOT / "forgather_workspace", tmp_path / "forgather_workspace")
    shutil.copytree(ROOT / "examples" / "data" / "chat", tmp_path / "examples" / "data" / "chat")
    here = tmp_path / cd[1]
    shutil.copytree(TUTORIAL, here, ignore=shutil.ignore_patterns("output_models", "__pycache__"))

    assert "saved" in run(executable(make), here)
    assert "logits match" in run(executable(convert), here)
    steps = train.index("--max-steps")
    run([*executable(train[:steps]), *TINY, "--max-steps", "2"], here)
    adapter = here / merge[2]
    assert (adapter / "adapter_model.safetensors").is_file()
    assert "logits match" in run(executable(merge), here)
    model_dir = here / serve[serve.index("-m") + 1]
    assert (model_dir / "model.safetensors").is_file() and (
        model_dir / "chat_template.jinja"
    ).is_file()

    port = free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen([*executable(serve), "--port", str(port)], cwd=here, stdout=log,
                              stderr=subprocess.STDOUT, env={**os.environ})  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail(
                        f"server did not start: {(tmp_path / 'server.log').read_text()[-2000:]}"
                    )
                time.sleep(0.3)
        quoted = re.search(r'python ask.py "(.*)"', (TUTORIAL / "README.md").read_text()).group(1)
        answer = subprocess.run(
            [sys.executable, ask[1], "--base-url", f"http://127.0.0.1:{port}/v1",
             "--max-tokens", "5", quoted],
            cwd=here, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert answer.returncode == 0, answer.stdout + answer.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert 'POST /v1/chat/completions HTTP/1.1" 200' in (tmp_path / "server.log").read_text()
