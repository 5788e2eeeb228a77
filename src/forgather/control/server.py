"""The endpoint a training job serves on 127.0.0.1 (rank 0 only).

It never touches training state itself: requests are validated, accepted
commands are queued, and the trainer's control callback drains the queue at
a step boundary. Status comes from a snapshot the callback refreshes, so a
slow or malicious client cannot stall or disturb the training loop.

``GET /jobs`` is the one request answered without the token: it describes
the job (id, config, pid, host, port, start time, state, step; never the
token or paths), so ``forgather control list --remote HOST:PORT`` can list a
job reached through a tunnel, as the original Forgather's ``/jobs`` did.

Every request a client can send gets a JSON answer (400 for anything
malformed: not JSON, nested too deeply for the parser, over the size limit,
not an object naming a command; 405 for a method other than GET and POST;
409 for a command after a stop or abort was accepted, which would never be
applied) and nothing is ever printed: the job's output is the training's, so
the server's own error hook is silenced as well.
"""

from __future__ import annotations

import hmac
import json
import os
import queue
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .protocol import COMMANDS

#: Commands after which the job applies nothing more (it ends at that step).
FINAL_COMMANDS = ("stop", "save-stop", "abort")

_MAX_BODY = 4096  # bytes; commands are tiny
_READ_TIMEOUT = 5.0  # seconds a client may take to send its request (a stuck one frees its thread)


class ControlServer:
    """A loopback HTTP server that queues commands for the training loop.

    Args:
        token: the secret every request must present (``Authorization: Bearer``).
        status: returns the latest status snapshot (a JSON-able dict; its
            ``step``, if any, is echoed in the reply to a command).
        port: 0 picks a free port.

    Example:
        >>> server = ControlServer("secret", lambda: {"step": 3}).start()  # doctest: +SKIP
        >>> server.next_command()  # None until a client sends one  # doctest: +SKIP
    """

    def __init__(self, token: str, status: Callable[[], dict[str, Any]], port: int = 0):
        self.token = token
        self.status = status
        self.commands: queue.Queue[str] = queue.Queue()
        self.final: tuple[str, Any] | None = None  # (command, step) of an accepted stop/abort
        self._accepting = threading.Lock()
        self._httpd = _QuietHTTPServer(("127.0.0.1", port), _handler(self))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="forgather-control",
            daemon=True,
        )

    @property
    def port(self) -> int:
        """The port it listens on (on 127.0.0.1)."""
        return self._httpd.server_address[1]

    def start(self) -> ControlServer:
        """Serve from a daemon thread; returns self."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()

    def next_command(self) -> str | None:
        """The oldest command not yet taken, or None."""
        try:
            return self.commands.get_nowait()
        except queue.Empty:
            return None

    def pending(self) -> list[str]:
        """Commands received since the last call, oldest first."""
        out = []
        while True:
            try:
                out.append(self.commands.get_nowait())
            except queue.Empty:
                return out


class _QuietHTTPServer(ThreadingHTTPServer):
    """A server whose unexpected errors close the connection without a traceback on stderr."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # a broken client must not print into the training job's output


def parse_command(raw: bytes) -> str:
    """The command named by a request body ``{"command": "..."}``.

    Raises:
        ValueError: The body is not such an object (the message says why).
    """
    try:
        body = json.loads(raw, parse_constant=_not_json)
    except RecursionError:  # e.g. [[[[...]]]]: deeper than the JSON parser goes
        raise ValueError("the JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(body, dict) or "command" not in body:
        raise ValueError('expected a JSON object {"command": "..."}')
    command = body["command"]
    if not isinstance(command, str) or command not in COMMANDS:
        expected = ", ".join(COMMANDS)
        shown = repr(command) if isinstance(command, str) else json.dumps(command)[:60]
        raise ValueError(f"unknown command {shown}; expected one of {expected}")
    return command


def _not_json(constant: str):
    """``json.loads`` takes NaN and Infinity, which JSON does not have."""
    raise ValueError(f"{constant} is not JSON")


PUBLIC_FIELDS = ("job_id", "config", "pid", "host", "port", "start_time", "world_size")


def public_description(server: ControlServer) -> dict[str, Any]:
    """What ``GET /jobs`` tells anyone who can reach the port (``control list --remote``).

    The job's registry entry without its token and run directory (found by this
    process's pid and the server's port), with its state and step.
    """
    from .registry import list_jobs

    mine = [j for j in list_jobs() if j.pid == os.getpid() and j.port == server.port]
    described: dict[str, Any] = {"pid": os.getpid(), "host": socket.gethostname(),
                                 "port": server.port}  # fmt: skip
    if mine:
        described.update({name: getattr(mine[0], name) for name in PUBLIC_FIELDS})
    status = server.status()
    described.update({key: status.get(key) for key in ("state", "step")})
    return described


def _handler(server: ControlServer):
    class Handler(BaseHTTPRequestHandler):
        timeout = _READ_TIMEOUT

        def log_message(self, format, *args):  # training output stays clean
            pass

        def reply(self, code: int, body: dict[str, Any], headers: dict[str, str] | None = None):
            data = json.dumps(body).encode()
            self.send_response(code)
            for name, value in {"Content-Type": "application/json",
                                "Content-Length": str(len(data)), **(headers or {})}.items():  # fmt: skip
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def send_error(self, code, message=None, explain=None):
            """http.server's own errors (bad request line, unsupported method) as JSON too."""
            self.close_connection = True
            if code == 501:  # a method no do_* handles
                error = f"method {self.command} not allowed: GET or POST"
                self.reply(405, {"error": error}, {"Allow": "GET, POST"})
            else:
                self.reply(code, {"error": f"malformed request: {message or 'bad request'}"})

        def authorized(self) -> bool:
            # The scheme is case-insensitive (RFC 9110); the token is compared in constant time.
            scheme, _, given = self.headers.get("Authorization", "").strip().partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(
                given.strip().encode(), server.token.encode()
            ):
                return True
            self.reply(401, {"error": "missing or wrong token"})
            return False

        def do_GET(self):
            if self.path == "/jobs":  # public: no token, nothing that steers or locates files
                self.reply(200, {"jobs": [public_description(server)]})
                return
            if not self.authorized():
                return
            if self.path != "/status":
                self.reply(404, {"error": f"no such endpoint: {self.path}"})
                return
            self.reply(200, server.status())

        def do_POST(self):
            if not self.authorized():
                return
            if self.path != "/command":
                self.reply(404, {"error": f"no such endpoint: {self.path}"})
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if not 0 < length <= _MAX_BODY:
                self.close_connection = True  # the unread body must not be taken as a request
                self.reply(400, {"error": f"malformed request: body must be 1..{_MAX_BODY} bytes"})
                return
            try:
                command = parse_command(self.rfile.read(length))
            except ValueError as e:
                prefix = "" if str(e).startswith("unknown command") else "malformed request: "
                self.reply(400, {"error": f"{prefix}{e}"})
                return
            step = server.status().get("step")
            with server._accepting:  # decided under the lock, answered outside it
                final = server.final
                if final is None:
                    if command in FINAL_COMMANDS:
                        server.final = (command, step)
                    server.commands.put(command)
            if final is not None:
                error = f"job is stopping: {final[0]!r} was accepted at step {final[1]}; "
                self.reply(409, {"error": error + "nothing after it is applied"})
                return
            self.reply(200, {"accepted": command, "step": step})

    return Handler
