"""The FastAPI application: OpenAI-compatible endpoints over the batch scheduler.

    GET  /health                 liveness, and the scheduler's counts
    GET  /v1/models              the one served model
    POST /v1/completions         text completion, streamed (SSE) or whole
    POST /v1/chat/completions    chat through the tokenizer's chat template

Each request becomes one scheduler sequence per choice (prompts x ``n``); the
scheduler thread hands outputs to the event loop with
``call_soon_threadsafe``, and the endpoint either streams them as SSE chunks
ending with ``data: [DONE]`` or collects them into one response.

Decision a reader may question: a non-streaming request also watches its
connection while it waits, and a streaming one cancels its sequences when its
generator is closed, so a client that goes away stops costing batch rows at
the next step instead of when its ``max_tokens`` run out.

Request bodies are JSON whatever their ``Content-Type`` (``middleware.py``).
Input from clients is bounded before it costs anything: bodies over
``max_body_bytes`` get 413 (``middleware.py``), a request asks for at most
``max_waiting`` sequences (prompts x ``n``, else 400 naming the limit), and
prompts are tokenized on one worker thread, so a huge prompt never stalls the
event loop that streams other clients' tokens and answers ``/health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse

from forgather.serve import prompts as prompt_rules
from forgather.serve.errors import APIError, install_error_handlers
from forgather.serve.middleware import AnswerEveryError, BodySizeLimit, JSONBody
from forgather.serve.prompts import ServedModel
from forgather.serve.protocol import ChatCompletionRequest, CompletionRequest
from forgather.serve.responses import ChatFormat, CompletionFormat, usage
from forgather.serve.sampling import SamplingParams, TokenChoice
from forgather.serve.scheduler import GenerationRequest, Overloaded, SequenceOutput


@dataclass
class _Choice:
    """What one choice has produced so far."""

    text: str = ""
    tokens: list[TokenChoice] = field(default_factory=list)
    finish_reason: str | None = None
    num_generated: int = 0


class _Mailbox:
    """Hands outputs from the scheduler thread to one event loop, waking it once per batch.

    The first item posted schedules a drain on the loop; items posted before the drain
    runs ride along, so one decode step's outputs for many requests cost one wake-up
    (a pipe write), not one each.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._items: list[tuple[asyncio.Queue, tuple[int, SequenceOutput]]] = []

    def post(self, queue: asyncio.Queue, item: tuple[int, SequenceOutput]) -> None:
        with self._lock:
            self._items.append((queue, item))
            if len(self._items) > 1:
                return
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed: let the next post raise too
            with self._lock:
                self._items.clear()
            raise

    def _drain(self) -> None:
        with self._lock:
            items, self._items = self._items, []
        for queue, item in items:
            queue.put_nowait(item)


_mailboxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Mailbox] = (
    weakref.WeakKeyDictionary()
)


def _mailbox(loop: asyncio.AbstractEventLoop) -> _Mailbox:
    """The loop's mailbox (only ever called on the loop's own thread)."""
    mailbox = _mailboxes.get(loop)
    if mailbox is None:
        mailbox = _mailboxes[loop] = _Mailbox(loop)
    return mailbox


class _Run:
    """The scheduler sequences of one HTTP request, their outputs delivered on the event loop."""

    def __init__(
        self,
        served: ServedModel,
        prompts: list[list[int]],
        params: list[SamplingParams],
        stream: bool,
    ):
        self._served = served
        self._queue: asyncio.Queue[tuple[int, SequenceOutput]] = asyncio.Queue()
        mailbox = _mailbox(asyncio.get_running_loop())

        def deliver_to(index: int) -> Callable[[SequenceOutput], None]:
            return lambda output: mailbox.post(self._queue, (index, output))

        requests = [
            GenerationRequest(p, s, deliver_to(i), stream)
            for i, (p, s) in enumerate(zip(prompts, params, strict=True))
        ]
        try:
            self._ids = served.scheduler.submit(requests)
        except Overloaded as error:
            raise APIError(
                503, f"the server is overloaded: {error}; retry later", code="overloaded"
            ) from None
        self.count = len(requests)
        self._unfinished = len(requests)

    async def outputs(self) -> AsyncIterator[tuple[int, SequenceOutput]]:
        """(choice index, output) as they arrive, until every choice has finished."""
        while self._unfinished:
            index, output = await self._queue.get()
            if output.finish_reason is not None:
                self._unfinished -= 1
            yield index, output

    async def batches(self) -> AsyncIterator[list[tuple[int, SequenceOutput]]]:
        """Like :meth:`outputs`, but each time every output that has already arrived."""
        while self._unfinished:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            self._unfinished -= sum(output.finish_reason is not None for _, output in batch)
            yield batch

    def cancel(self) -> None:
        """Drop the sequences still running (a no-op for finished ones)."""
        if self._unfinished:
            self._served.scheduler.cancel(self._ids)


def _sse(body: dict | str) -> str:
    return f"data: {body if isinstance(body, str) else json.dumps(body)}\n\n"


async def _collect(run: _Run, count: int, request: Request) -> list[_Choice]:
    """Wait for every choice to finish; cancel the run if the client disconnects."""

    async def gather() -> list[_Choice]:
        choices = [_Choice() for _ in range(count)]
        async for index, output in run.outputs():
            choice = choices[index]
            if output.finish_reason == "error":
                raise APIError(500, f"generation failed: {output.error}", code="generation_error")
            choice.text += output.text
            choice.tokens += output.tokens
            choice.num_generated = output.num_generated
            choice.finish_reason = output.finish_reason
        return choices

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    gathering, watching = asyncio.ensure_future(gather()), asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait([gathering, watching], return_when=asyncio.FIRST_COMPLETED)
    finally:
        watching.cancel()
        if not gathering.done():
            gathering.cancel()
            run.cancel()
        # cancel() only asks: wait until both tasks have really ended before reading them.
        await asyncio.gather(gathering, watching, return_exceptions=True)
    if gathering.cancelled():  # nobody will read this answer
        raise APIError(400, "the client disconnected", code="client_disconnected")
    return gathering.result()


DEFAULT_MAX_BODY_BYTES = 8 * 2**20  # 8 MiB: room for a long prompt as JSON token ids


def create_app(
    served: ServedModel, root: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
) -> FastAPI:
    """The application serving ``served``; its lifespan starts and stops the scheduler.

    Args:
        served: The model.
        root: Where its weights were loaded from (a model directory or a
            checkpoint), shown as ``root`` in ``/v1/models`` as vLLM does.
        max_body_bytes: Larger request bodies are answered 413.
    """
    # One thread: tokenizers are not safe to call from several threads at once.
    tokenizing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="forgather-tokenize")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        served.scheduler.start()
        yield
        served.scheduler.stop()
        tokenizing.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="Forgather inference server", lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(JSONBody)  # bodies are JSON whatever their Content-Type says
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_middleware(AnswerEveryError)  # added last: the outermost

    async def off_the_loop(function: Callable, *args):
        return await asyncio.get_running_loop().run_in_executor(tokenizing, function, *args)

    def check_request_size(sequences: int, param: str) -> None:
        limit = served.scheduler.max_waiting
        if sequences > limit:
            raise APIError(
                400,
                f"this request asks for {sequences} sequences (prompts x n); "
                f"this server takes at most {limit} per request",
                param=param,
                code="too_many_sequences",
            )

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": served.name, **served.scheduler.stats()}

    def model_card() -> dict:
        return {
            "id": served.name,
            "object": "model",
            "created": served.created,
            "owned_by": "forgather",
            "max_model_len": served.context_length,
            **({"root": root} if root is not None else {}),
        }

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str) -> dict:
        prompt_rules.check_model_name(served, name)
        return model_card()

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        body.check_supported()
        prompt_rules.check_model_name(served, body.model)
        count = len(body.prompts()) * body.n
        check_request_size(count, "n" if body.n > 1 else "prompt")
        prompts = await off_the_loop(prompt_rules.completion_prompts, served, body)
        echoes: list[str] = []  # with echo: each choice's text starts with its prompt
        choice_prompts, params = [], []
        for given, prompt in zip(body.prompts(), prompts, strict=True):
            if body.echo:
                text = given if isinstance(given, str) else served.tokenizer.decode(prompt)
                echoes += [text] * body.n
            for _ in range(body.n):
                seed = None if body.seed is None else body.seed + len(params)
                params.append(
                    prompt_rules.sampling_params(
                        served,
                        body,
                        len(prompt),
                        body.max_tokens,
                        prompt_rules.COMPLETION_DEFAULT_MAX_TOKENS,
                        body.logprobs,
                        seed,
                    )
                )
                choice_prompts.append(prompt)
        form = CompletionFormat(served.name, served.tokenizer)
        prompt_tokens = sum(len(p) for p in prompts)
        with_logprobs = body.logprobs is not None
        run = _Run(served, choice_prompts, params, body.stream)
        if body.stream:
            return _stream(
                run, form, prompt_tokens, body.include_usage, with_logprobs, chat=False,
                echoes=echoes,
            )  # fmt: skip
        choices = await _collect(run, len(params), request)
        return form.response(
            [
                form.choice(
                    i,
                    (echoes[i] if echoes else "") + c.text,
                    c.finish_reason,
                    c.tokens if with_logprobs else None,
                )
                for i, c in enumerate(choices)
            ],
            usage(prompt_tokens, sum(c.num_generated for c in choices)),
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        body.check_supported()
        prompt_rules.check_model_name(served, body.model)
        check_request_size(body.n, "n")
        prompt = await off_the_loop(prompt_rules.chat_prompt, served, body)
        params = [
            prompt_rules.sampling_params(
                served,
                body,
                len(prompt),
                body.requested_max_tokens,
                None,
                body.logprobs_count,
                None if body.seed is None else body.seed + i,
            )
            for i in range(body.n)
        ]
        form = ChatFormat(served.name, served.tokenizer)
        run = _Run(served, [prompt] * body.n, params, body.stream)
        if body.stream:
            return _stream(run, form, len(prompt), body.include_usage, body.logprobs, chat=True)
        choices = await _collect(run, body.n, request)
        return form.response(
            [
                form.choice(i, c.text, c.finish_reason, c.tokens if body.logprobs else None)
                for i, c in enumerate(choices)
            ],
            usage(len(prompt), sum(c.num_generated for c in choices)),
        )

    return app


def _stream(
    run: _Run,
    form: CompletionFormat | ChatFormat,
    prompt_tokens: int,
    include_usage: bool,
    with_logprobs: bool,
    chat: bool,
    echoes: list[str] | None = None,
) -> StreamingResponse:
    """An SSE response with one chunk per output, ``[DONE]`` at the end.

    ``echoes``: completions only, each choice's prompt, sent as its first chunk.
    """

    async def events() -> AsyncIterator[str]:
        generated: dict[int, int] = {}
        offsets: dict[int, int] = {}  # text already sent per choice (completion logprobs offsets)
        try:
            if chat:  # the first chunk of each choice announces the role
                for index in range(run.count):
                    delta = {"role": "assistant", "content": ""}
                    yield _sse(form.chunk([form.delta_choice(index, delta, None)], include_usage))
            for index, text in enumerate(echoes or ()):
                yield _sse(form.chunk([form.choice(index, text, None, None)], include_usage))
            async for batch in run.batches():
                events = []  # every output that has arrived, sent in one write
                for index, output in batch:
                    if output.finish_reason == "error":
                        error = APIError(
                            500, f"generation failed: {output.error}", code="generation_error"
                        )
                        events.append(_sse(error.body()))
                        continue
                    generated[index] = output.num_generated
                    tokens = output.tokens if with_logprobs else None
                    if chat:
                        delta = {"content": output.text} if output.text else {}
                        choice = form.delta_choice(index, delta, output.finish_reason, tokens)
                    else:
                        offset = offsets.get(index, 0)
                        choice = form.choice(
                            index, output.text, output.finish_reason, tokens, offset
                        )
                        offsets[index] = offset + len(output.text)
                    events.append(_sse(form.chunk([choice], include_usage)))
                yield "".join(events)
            if include_usage:
                yield _sse(form.usage_chunk(usage(prompt_tokens, sum(generated.values()))))
            yield _sse("[DONE]")
        finally:  # also when the client disconnects and Starlette cancels this generator
            run.cancel()

    return StreamingResponse(events(), media_type="text/event-stream")
