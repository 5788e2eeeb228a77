"""A terminal client for any OpenAI-compatible server, built on the ``openai`` package.

    forgather inf client                                  # interactive chat, streamed
    forgather inf client --message "Hello" --max-tokens 64
    forgather inf client --completion "def fib(n):" --temperature 0
    forgather inf client --url http://gpu-box:8000 --model tiny_llama
    forgather inf client --health                          # exit 0 when it answers

Interactive chat keeps the conversation (each turn sends the whole history);
``/reset`` forgets it, ``/quit`` or end of input leaves.

Decision a reader may question: the client streams by default, also for
one-shot ``--message`` and ``--completion``, so the first words appear as soon
as the server produces them; ``--no-stream`` asks for one whole response.
``--show-usage`` prints token counts in both modes (streamed answers ask the
server for a final usage chunk). A completion prints its prompt first
(``echo``, as the original Forgather's client does) unless ``--no-echo``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO


@dataclass
class ClientSettings:
    """What ``forgather inf client`` takes.

    Attributes:
        url: The server's base URL, with or without ``/v1``.
        model: The model name; default: the first the server lists.
        completion: Send this text to ``/v1/completions`` and exit.
        message: Send this user message to ``/v1/chat/completions`` and exit.
        system: A system message starting the conversation.
        max_tokens: Most tokens per answer (None: the server's default).
        temperature: Sampling temperature (0: greedy); None: server default.
        top_p: Nucleus sampling mass; None: server default.
        top_k: Keep the k most likely tokens; None: server default.
        seed: Sampling seed.
        stop: Stop strings.
        stream: Print tokens as they arrive.
        api_key: Sent as the bearer token (this server ignores it).
        echo: Completions: print the prompt before the generated text.
        show_usage: Print token counts after each answer.
        interactive: Chat after any ``message``.
        repetition_penalty: Hugging Face's (sent in ``extra_body``).
        no_repeat_ngram_size: Hugging Face's (sent in ``extra_body``).
        num_beams: Hugging Face's (sent in ``extra_body``; this server takes only 1).
        min_length: Hugging Face's: prompt + answer tokens before the end is allowed.
        health: Only check that the server answers (exit 0) or not (exit 1).
        list_models: Only list the server's models.
    """

    url: str = "http://127.0.0.1:8000"
    model: str | None = None
    completion: str | None = None
    message: str | None = None
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = True
    api_key: str = "EMPTY"
    echo: bool = True
    show_usage: bool = False
    interactive: bool = False
    repetition_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    num_beams: int | None = None
    min_length: int | None = None
    health: bool = False
    list_models: bool = False


def base_url(url: str) -> str:
    """``url`` ending in ``/v1``, as the ``openai`` client wants it.

    >>> base_url("http://localhost:8000/"), base_url("http://h:1/v1")
    ('http://localhost:8000/v1', 'http://h:1/v1')
    """
    url = url.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


class ChatSession:
    """One conversation with a server.

    Args:
        settings: Connection and sampling settings.
        out: Where answers are printed.
    """

    def __init__(self, settings: ClientSettings, out: TextIO | None = None) -> None:
        self.settings = settings
        self.out = out if out is not None else sys.stdout  # read now, not at import
        self.client = _openai_client(settings)
        self.model = settings.model or self.client.models.list().data[0].id
        self.history: list[dict[str, str]] = []
        self.reset()

    def reset(self) -> None:
        """Forget the conversation (keeping the system message)."""
        self.history = (
            [{"role": "system", "content": self.settings.system}] if self.settings.system else []
        )

    def _sampling(self) -> dict[str, Any]:
        s = self.settings
        options: dict[str, Any] = {
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "seed": s.seed,
            "stop": s.stop or None,
        }
        options = {name: value for name, value in options.items() if value is not None}
        extra = {
            "top_k": s.top_k,
            "repetition_penalty": s.repetition_penalty,
            "no_repeat_ngram_size": s.no_repeat_ngram_size,
            "num_beams": s.num_beams,
            "min_length": s.min_length,
        }
        extra = {name: value for name, value in extra.items() if value is not None}
        if extra:  # not OpenAI's names: the openai client sends them as they are
            options["extra_body"] = extra
        if s.stream and s.show_usage:
            options["stream_options"] = {"include_usage": True}
        return options

    def _print(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def chat(self, message: str) -> str:
        """Send one user message (with the history); print and return the answer."""
        self.history.append({"role": "user", "content": message})
        answer = self._ask_chat()
        self.history.append({"role": "assistant", "content": answer})
        return answer

    def _ask_chat(self) -> str:
        create = self.client.chat.completions.create
        if not self.settings.stream:
            response = create(model=self.model, messages=self.history, **self._sampling())
            answer = response.choices[0].message.content or ""
            self._print(answer + "\n" + self._usage(response.usage))
            return answer
        pieces, usage = [], None
        stream = create(model=self.model, messages=self.history, stream=True, **self._sampling())
        for chunk in stream:
            usage = chunk.usage or usage
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
                self._print(pieces[-1])
        self._print("\n" + self._usage(usage))
        return "".join(pieces)

    def _usage(self, usage: Any) -> str:
        return _usage_line(usage) if self.settings.show_usage else ""

    def complete(self, prompt: str) -> str:
        """Send one completion prompt; print and return the completion."""
        create = self.client.completions.create
        options = self._sampling()
        if self.settings.echo:
            options["echo"] = True  # the server sends the prompt first
        if not self.settings.stream:
            response = create(model=self.model, prompt=prompt, **options)
            text = response.choices[0].text
            self._print(text + "\n" + self._usage(response.usage))
            return text
        pieces, usage = [], None
        for chunk in create(model=self.model, prompt=prompt, stream=True, **options):
            usage = chunk.usage or usage
            if chunk.choices and chunk.choices[0].text:
                pieces.append(chunk.choices[0].text)
                self._print(pieces[-1])
        self._print("\n" + self._usage(usage))
        return "".join(pieces)


def _openai_client(settings: ClientSettings):
    import openai

    return openai.OpenAI(base_url=base_url(settings.url), api_key=settings.api_key)


def _usage_line(usage: Any) -> str:
    if usage is None:
        return ""
    return f"[{usage.prompt_tokens} prompt + {usage.completion_tokens} completion tokens]\n"


def interactive(session: ChatSession, read: Callable[[str], str] = input) -> None:
    """Chat until ``/quit`` or end of input; ``read(prompt)`` returns the next line."""
    session._print(f"chatting with {session.model}; /reset forgets, /quit leaves\n")
    while True:
        try:
            line = read("> ").strip()
        except EOFError:
            session._print("\n")
            return
        if line == "/quit":
            return
        if line == "/reset":
            session.reset()
            continue
        if line:
            session.chat(line)


def run_client(settings: ClientSettings, out: TextIO | None = None) -> int:
    """Run the client as ``forgather inf client`` does; return the exit code.

    ``out``: where answers go (default: ``sys.stdout`` as it is when called).
    """
    out = out if out is not None else sys.stdout
    import openai

    try:
        if settings.health or settings.list_models:
            models = [model.id for model in _openai_client(settings).models.list().data]
            if settings.health:
                out.write(f"{settings.url} is healthy: it serves {', '.join(models)}\n")
            else:
                out.write("".join(f"{model}\n" for model in models))
            return 0
        session = ChatSession(settings, out)
        if settings.completion is not None:
            session.complete(settings.completion)
        elif settings.message is not None:
            session.chat(settings.message)
        if settings.interactive or (settings.completion is None and settings.message is None):
            interactive(session)
    except openai.APIStatusError as error:
        print(
            f"forgather inf client: the server answered {error.status_code}: "
            f"{_error_message(error)}",
            file=sys.stderr,
        )
        return 1
    except openai.APIConnectionError as error:
        print(f"forgather inf client: cannot reach {settings.url}: {error}", file=sys.stderr)
        return 1
    return 0


def _error_message(error: Any) -> str:
    body = error.body
    if isinstance(body, dict):
        return str(body.get("message", body))
    return str(error)
