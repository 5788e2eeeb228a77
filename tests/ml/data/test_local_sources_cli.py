"""The README's "Train on your own text" commands, run as written (plus tiny sizes)
in a copy of the repository's workspace and the train_text project."""

from __future__ import annotations

import json
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

from .test_local_sources import play

ROOT = Path(__file__).parents[3]
FORGATHER = str(Path(sys.executable).parent / "forgather")
TINY = ["-D", "block_size=32", "-D", "batch_size=2", "-D", "tokenizer_vocab_size=300"]


def readme_commands() -> list[list[str]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Train on your own text", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split() for line in block.strip().splitlines()]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(args: list[str], cwd: Path) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@pytest.mark.slow
def test_readme_walkthrough_trains_and_serves(tmp_path):
    dataset, train, serve = readme_commands()
    assert dataset[:2] == train[:2] == ["forgather", "-p"] and serve[:3] == [
        "forgather",
        "inf",
        "server",
    ]
    shutil.copytree(ROOT / "forgather_workspace", tmp_path / "forgather_workspace")
    shutil.copytree(
        ROOT / "examples" / "data" / "train_text",
        tmp_path / "examples" / "data" / "train_text",
        ignore=shutil.ignore_patterns("output_models"),
    )
    (tmp_path / "input.txt").write_text(play(200))

    shown = run([FORGATHER, *dataset[1:], *TINY, "-n", "1"], tmp_path)
    assert "# Blocks of train" in shown and "ROMEO" in shown
    assert "document starts per block" in shown

    steps = train.index("--max-steps")
    run([FORGATHER, *train[1:steps], *TINY, "--max-steps", "2"], tmp_path)
    model_dir = tmp_path / serve[serve.index("-m") + 1]
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "tokenizer.json").is_file()

    port = free_port()
    log = open(tmp_path / "server.log", "wb")  # noqa: SIM115 - closed in finally
    server = subprocess.Popen(
        [FORGATHER, *serve[1:], "--port", str(port)],
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    tail = (tmp_path / "server.log").read_text()[-2000:]
                    pytest.fail(f"server did not start: {tail}")
                time.sleep(0.3)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/completions",
            data=json.dumps({"prompt": "ROMEO:", "max_tokens": 5}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.load(response)
        assert answer["choices"][0]["text"] is not None
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
