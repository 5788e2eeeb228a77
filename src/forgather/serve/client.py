"""A terminal client for any OpenAI-compatible server, built on the ``openai`` package.

    forgather inf client                                  # interactive chat, streamed
    forgather inf client --message "Hello" --max-tokens 64
    forgather inf client --completion "def fib(n):" --temperature 0
    forgather inf client --url http://gpu-box:8000 --model tiny_llama

Interactive chat keeps the conversation (each turn sends the whole history);
``/reset`` forgets it, ``/quit`` or end of input leaves.

Decision a reader may question: the client streams by default, also for
one-shot ``--message`` and ``--completion``, so the first words appear as soon
as the server produces them; ``--no-stream`` asks for one whole response (and
prints its token counts).
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

    def __init__(self, settings: ClientSettings, out: TextIO = sys.stdout) -> None:
        import openai

        self.settings = settings
        self.out = out
        self.client = openai.OpenAI(base_url=base_url(settings.url), api_key=settings.api_key)
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
        if s.top_k is not None:
            options["extra_body"] = {"top_k": s.top_k}
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
            self._print(answer + "\n" + _usage_line(response.usage))
            return answer
        pieces = []
        stream = create(model=self.model, messages=self.history, stream=True, **self._sampling())
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
                self._print(pieces[-1])
        self._print("\n")
        return "".join(pieces)

    def complete(self, prompt: str) -> str:
        """Send one completion prompt; print and return the completion."""
        create = self.client.completions.create
        if not self.settings.stream:
            response = create(model=self.model, prompt=prompt, **self._sampling())
            text = response.choices[0].text
            self._print(text + "\n" + _usage_line(response.usage))
            return text
        pieces = []
        for chunk in create(model=self.model, prompt=prompt, stream=True, **self._sampling()):
            if chunk.choices and chunk.choices[0].text:
                pieces.append(chunk.choices[0].text)
                self._print(pieces[-1])
        self._print("\n")
        return "".join(pieces)


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


def run_client(settings: ClientSettings, out: TextIO = sys.stdout) -> int:
    """Run the client as ``forgather inf client`` does; return the exit code."""
    import openai

    try:
        session = ChatSession(settings, out)
        if settings.completion is not None:
            session.complete(settings.completion)
        elif settings.message is not None:
            session.chat(settings.message)
        else:
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
