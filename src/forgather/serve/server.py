"""Run the server: load the model, build the app, hand it to uvicorn.

    serve(ServerSettings(model_path="output_models/tiny_llama", port=8000))

    with ServerThread(wrap_model(model, tokenizer, "tiny")) as server:   # tests, benchmarks
        openai.OpenAI(base_url=server.url + "/v1", api_key="-").completions.create(...)

Decision a reader may question: :class:`ServerThread` runs a real uvicorn
server on a background thread of the calling process instead of a
subprocess, so tests and benchmarks load the model once, talk to it over a
real socket, and can still read the scheduler's counters directly.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from forgather.serve.loading import LoadedModel, context_length, load_model_for_serving
from forgather.serve.prompts import ServedModel, split_stop_sequences, stop_token_ids
from forgather.serve.scheduler import BatchScheduler


@dataclass
class ServerSettings:
    """Everything ``forgather inf server`` takes.

    Attributes:
        model_path: The model directory.
        checkpoint: True: serve the newest ``checkpoint-<step>`` below it that
            fits its config; a path: that checkpoint directory.
        host: Interface to listen on.
        port: TCP port.
        device: ``cpu``, ``cuda``, ``cuda:1``, ...; ``auto``: ``cuda`` when available.
        dtype: ``auto`` (as saved), ``float32``, ``bfloat16``, ``float16`` (or ``bf16``, ...).
        max_batch_size: Most sequences decoded together.
        max_batch_tokens: Token budget of the running sequences (prompt + max_tokens).
        max_waiting: Most queued sequences before requests get 503.
        chat_template: A Jinja file replacing the tokenizer's chat template.
        served_model_name: The name clients use; default: the directory's name.
        log_level: uvicorn's log level.
        max_body_bytes: Request bodies larger than this get 413.
        attn_implementation: ``eager``, ``sdpa``, ...; None: transformers' choice.
        stop_sequences: Stop every request at these too (a special token such
            as ``<|im_end|>`` becomes a stop token, anything else a stop string).
        compile: Run the model's forward through ``torch.compile``.
        compile_args: Keyword arguments of ``torch.compile`` (e.g. ``{"mode": "reduce-overhead"}``).
        cache_implementation: Only ``dynamic`` (this server's own batched cache).
        use_cache: False recomputes each sequence at every step (no KV cache).
    """

    model_path: str
    checkpoint: bool | str = False
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "cpu"
    dtype: str = "auto"
    max_batch_size: int = 16
    max_batch_tokens: int = 32768
    max_waiting: int = 256
    chat_template: str | None = None
    served_model_name: str | None = None
    log_level: str = "info"
    max_body_bytes: int = 8 * 2**20  # forgather.serve.app.DEFAULT_MAX_BODY_BYTES
    attn_implementation: str | None = None
    stop_sequences: tuple[str, ...] = ()
    compile: bool = False
    compile_args: dict[str, Any] | None = None
    cache_implementation: str | None = None
    use_cache: bool = True

    def check(self) -> None:
        """Raise ValueError for settings this server cannot honour (before loading anything)."""
        if self.cache_implementation not in (None, "dynamic"):
            raise ValueError(
                f"--cache-implementation {self.cache_implementation}: this server batches "
                "requests in its own dynamic KV cache, so only 'dynamic' is available "
                "(or --disable-kv-cache)"
            )
        if self.compile_args is not None and not isinstance(self.compile_args, dict):
            raise ValueError(f"--compile-args must be a mapping, not {self.compile_args!r}")


def wrap_model(
    model: Any,
    tokenizer: Any,
    name: str,
    max_batch_size: int = 16,
    max_batch_tokens: int = 32768,
    max_waiting: int = 256,
    context: int | None = None,
    stop_sequences: Sequence[str] = (),
    use_cache: bool = True,
) -> ServedModel:
    """Wrap a loaded model for serving (the scheduler is started by the app).

    Args:
        model: A causal LM in eval mode.
        tokenizer: Its tokenizer.
        name: The name clients pass as ``model``.
        max_batch_size: See :class:`BatchScheduler`.
        max_batch_tokens: See :class:`BatchScheduler`.
        max_waiting: See :class:`BatchScheduler`.
        context: Context length; default: read from the model's config.
        stop_sequences: Added to every request's stops (see :class:`ServerSettings`).
        use_cache: See :class:`BatchScheduler`.
    """
    scheduler = BatchScheduler(
        model, tokenizer, max_batch_size, max_batch_tokens, max_waiting, use_cache=use_cache
    )
    stop_ids, stop_strings = split_stop_sequences(tokenizer, stop_sequences)
    return ServedModel(
        name=name,
        tokenizer=tokenizer,
        scheduler=scheduler,
        context_length=context or context_length(model, tokenizer),
        stop_token_ids=tuple(sorted({*stop_token_ids(model, tokenizer), *stop_ids})),
        created=int(time.time()),
        stop_strings=stop_strings,
    )


def load_served_model(settings: ServerSettings) -> ServedModel:
    """Load the model ``settings`` names and wrap it for serving."""
    return _wrap_loaded(_load(settings), settings)


def _load(settings: ServerSettings) -> LoadedModel:
    settings.check()
    return load_model_for_serving(
        settings.model_path,
        checkpoint=settings.checkpoint,
        device=settings.device,
        dtype=settings.dtype,
        chat_template_file=settings.chat_template,
        attn_implementation=settings.attn_implementation,
    )


def _wrap_loaded(loaded: LoadedModel, settings: ServerSettings) -> ServedModel:
    name = settings.served_model_name or os.path.basename(os.path.normpath(settings.model_path))
    model = loaded.model
    if settings.compile:
        import torch

        # The forward only: the scheduler still reads the model's config and parameters.
        model.forward = torch.compile(model.forward, **(settings.compile_args or {}))
    return wrap_model(
        model,
        loaded.tokenizer,
        name,
        settings.max_batch_size,
        settings.max_batch_tokens,
        settings.max_waiting,
        stop_sequences=settings.stop_sequences,
        use_cache=settings.use_cache,
    )


def serve(settings: ServerSettings) -> None:
    """Load the model and serve it until interrupted.

    Says on stderr which weights it loaded (with ``checkpoint``: which
    checkpoint, and any it passed over), and shows them as ``root`` in ``/v1/models``.
    """
    import uvicorn

    from forgather.serve.app import create_app

    loaded = _load(settings)
    served = _wrap_loaded(loaded, settings)
    step = f" (step {loaded.step})" if loaded.step is not None else ""
    print(f"loaded weights from {loaded.weights}{step}", file=sys.stderr, flush=True)
    first = next(served.scheduler.model.parameters())
    attention = getattr(served.scheduler.model.config, "_attn_implementation", None)
    how = [f"{first.dtype} on {first.device}", f"attention {attention}",
           "KV cache" if settings.use_cache else "no KV cache (--disable-kv-cache)"]  # fmt: skip
    if settings.compile:
        how.append(f"torch.compile({settings.compile_args or {}})")
    print(f"running the model: {', '.join(how)}", file=sys.stderr, flush=True)
    if served.stop_strings or settings.stop_sequences:
        print(f"stopping every request also at {list(settings.stop_sequences)}", file=sys.stderr,
              flush=True)  # fmt: skip
    print(
        f"serving {served.name!r} at http://{settings.host}:{settings.port}/v1 "
        f"(context {served.context_length} tokens, batches of up to {settings.max_batch_size})",
        file=sys.stderr,
        flush=True,
    )
    app = create_app(
        served, root=os.path.abspath(loaded.weights), max_body_bytes=settings.max_body_bytes
    )
    try:
        uvicorn.run(app, host=settings.host, port=settings.port,
                    log_level=settings.log_level.lower())  # fmt: skip
    except SystemExit as exit_:
        if exit_.code in (0, None):
            raise
        # uvicorn logs why (the port was taken since the CLI checked it, say) and exits 3.
        raise OSError(
            errno.EADDRNOTAVAIL,
            "the server could not start listening (uvicorn's message is above)",
            f"{settings.host}:{settings.port}",
        ) from None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class ServerThread:
    """A uvicorn server on a background thread, as a context manager.

    Args:
        served: The model to serve.
        host: Interface to listen on.
        port: TCP port; default: a free one.
        **app_options: Passed to :func:`forgather.serve.app.create_app` (e.g. ``max_body_bytes``).
    """

    def __init__(
        self,
        served: ServedModel,
        host: str = "127.0.0.1",
        port: int | None = None,
        **app_options: Any,
    ):
        import uvicorn

        from forgather.serve.app import create_app

        self.served = served
        self.port = port or free_port(host)
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(
            create_app(served, **app_options),
            host=host,
            port=self.port,
            log_level="warning",
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="uvicorn", daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join()
