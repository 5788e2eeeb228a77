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

import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from forgather.serve.loading import LoadedModel, context_length, load_model_for_serving
from forgather.serve.prompts import ServedModel, stop_token_ids
from forgather.serve.scheduler import BatchScheduler


@dataclass
class ServerSettings:
    """Everything ``forgather inf server`` takes.

    Attributes:
        model_path: The model directory.
        checkpoint: Serve the newest ``checkpoint-<step>`` below it that fits its config.
        host: Interface to listen on.
        port: TCP port.
        device: ``cpu``, ``cuda``, ``cuda:1``, ...
        dtype: ``auto``, ``float32``, ``bfloat16`` or ``float16``.
        max_batch_size: Most sequences decoded together.
        max_batch_tokens: Token budget of the running sequences (prompt + max_tokens).
        max_waiting: Most queued sequences before requests get 503.
        chat_template: A Jinja file replacing the tokenizer's chat template.
        served_model_name: The name clients use; default: the directory's name.
        log_level: uvicorn's log level.
        max_body_bytes: Request bodies larger than this get 413.
    """

    model_path: str
    checkpoint: bool = False
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


def wrap_model(
    model: Any,
    tokenizer: Any,
    name: str,
    max_batch_size: int = 16,
    max_batch_tokens: int = 32768,
    max_waiting: int = 256,
    context: int | None = None,
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
    """
    scheduler = BatchScheduler(model, tokenizer, max_batch_size, max_batch_tokens, max_waiting)
    return ServedModel(
        name=name,
        tokenizer=tokenizer,
        scheduler=scheduler,
        context_length=context or context_length(model, tokenizer),
        stop_token_ids=stop_token_ids(model, tokenizer),
        created=int(time.time()),
    )


def load_served_model(settings: ServerSettings) -> ServedModel:
    """Load the model ``settings`` names and wrap it for serving."""
    return _wrap_loaded(_load(settings), settings)


def _load(settings: ServerSettings) -> LoadedModel:
    return load_model_for_serving(
        settings.model_path,
        checkpoint=settings.checkpoint,
        device=settings.device,
        dtype=settings.dtype,
        chat_template_file=settings.chat_template,
    )


def _wrap_loaded(loaded: LoadedModel, settings: ServerSettings) -> ServedModel:
    name = settings.served_model_name or os.path.basename(os.path.normpath(settings.model_path))
    return wrap_model(
        loaded.model,
        loaded.tokenizer,
        name,
        settings.max_batch_size,
        settings.max_batch_tokens,
        settings.max_waiting,
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
    print(
        f"serving {served.name!r} at http://{settings.host}:{settings.port}/v1 "
        f"(context {served.context_length} tokens, batches of up to {settings.max_batch_size})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        create_app(
            served, root=os.path.abspath(loaded.weights), max_body_bytes=settings.max_body_bytes
        ),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
    )


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
