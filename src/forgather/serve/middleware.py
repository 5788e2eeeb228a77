"""Three ASGI layers around the application: bodies read as JSON, a body limit, a last-resort error.

``JSONBody`` declares every request body ``application/json`` before FastAPI
sees it. FastAPI parses a body as JSON only when the request says so, and
``curl -d '{...}'`` says ``application/x-www-form-urlencoded``: the body then
reached validation as bytes ("Input should be a valid dictionary"), and
malformed JSON never got its ``invalid_json`` code. These endpoints take
nothing but JSON, so the declared type is not consulted, except from a web
page: a browser sends a form or text/plain body to any origin without asking
first (a JSON one only after a CORS preflight, which this server does not
answer), so such a request with an ``Origin`` header gets 415 instead of
spending the server's time for a page the user merely opened.

``BodySizeLimit`` answers 413 before a body larger than the limit reaches the
JSON parser (checked on ``Content-Length`` and, for chunked bodies, while
reading), so one client cannot make the server parse megabytes of JSON.

``AnswerEveryError`` turns an exception nothing else handled into an
OpenAI-style 500 and *returns*, instead of letting it reach uvicorn.

Decision a reader may question: why not Starlette's ``Exception`` handler?
Starlette calls that handler and then re-raises, and uvicorn answers a raised
exception by closing the keep-alive connection, so a client's next request on
the same connection failed with a broken pipe. Here the exception stops at
this middleware, is logged once, and the connection stays usable. If the
response had already started (a stream), the body is ended cleanly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from forgather.serve.errors import APIError

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _send_error(send: Send, error: APIError) -> None:
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class JSONBody:
    """Parse every request body as JSON whatever its declared ``Content-Type``.

    The request's ``Content-Type`` header, if any, is replaced by ``application/json``.

    Args:
        app: The application.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            declared = {k.lower(): v for k, v in scope.get("headers", [])}
            content_type = declared.get(b"content-type", b"").split(b";")[0].strip().lower()
            if b"origin" in declared and content_type != b"application/json":
                await _send_error(send, APIError(
                    415, "a request from a web page must declare Content-Type: application/json",
                    code="unsupported_media_type",
                ))  # fmt: skip
                return
            headers = [(k, v) for k, v in scope.get("headers", []) if k.lower() != b"content-type"]
            headers.append((b"content-type", b"application/json"))
            scope = {**scope, "headers": headers}
        await self.app(scope, receive, send)


class BodySizeLimit:
    """Answer 413 to any request whose body exceeds ``max_bytes``.

    Args:
        app: The application.
        max_bytes: The largest body accepted.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> APIError:
        return APIError(
            413,
            f"the request body is larger than this server's limit of {self.max_bytes} bytes",
            code="request_too_large",
            type="invalid_request_error",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _send_error(send, self._too_large())
            return
        # Read the whole body here (it is bounded), then replay it to the application.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left while sending
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_error(send, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: disconnect notices

        await self.app(scope, replay, send)


class AnswerEveryError:
    """Answer an unhandled exception with an OpenAI-style 500 and keep the connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            logger.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if not started:
                message = f"internal error: {type(error).__name__}: {error}"
                await _send_error(send, APIError(500, message))
            else:  # a stream had started: end its body so the client is not left waiting
                await send({"type": "http.response.body", "body": b"", "more_body": False})
