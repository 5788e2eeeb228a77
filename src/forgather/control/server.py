"""The endpoint a training job serves on 127.0.0.1 (rank 0 only).

It never touches training state itself: requests are validated, accepted
commands are queued, and the trainer's control callback drains the queue at
a step boundary. Status comes from a snapshot the callback refreshes, so a
slow or malicious client cannot stall or disturb the training loop.
"""

from __future__ import annotations

import hmac
import json
import queue
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .protocol import COMMANDS

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
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(self))
        self._httpd.daemon_threads = True
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


def _handler(server: ControlServer):
    class Handler(BaseHTTPRequestHandler):
        timeout = _READ_TIMEOUT

        def log_message(self, format, *args):  # training output stays clean
            pass

        def reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorized(self) -> bool:
            given = self.headers.get("Authorization", "")
            expected = f"Bearer {server.token}"
            if hmac.compare_digest(given.encode(), expected.encode()):
                return True
            self.reply(401, {"error": "missing or wrong token"})
            return False

        def do_GET(self):
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
                if not 0 < length <= _MAX_BODY:
                    raise ValueError(f"body must be 1..{_MAX_BODY} bytes")
                body = json.loads(self.rfile.read(length))
                command = body["command"]
            except (ValueError, KeyError, TypeError) as e:
                self.reply(400, {"error": f"malformed request: {e}"})
                return
            if command not in COMMANDS:
                expected = ", ".join(COMMANDS)
                self.reply(
                    400, {"error": f"unknown command {command!r}; expected one of {expected}"}
                )
                return
            server.commands.put(command)
            self.reply(200, {"accepted": command, "step": server.status().get("step")})

    return Handler
