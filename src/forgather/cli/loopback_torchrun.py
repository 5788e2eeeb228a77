"""torchrun for one machine whose rendezvous store listens on 127.0.0.1 only.

    python -m forgather.cli.loopback_torchrun --rdzv-endpoint=127.0.0.1:0 \\
        --nproc-per-node=2 -m forgather.cli -t cfg.yaml train

``forgather train --nproc N`` runs this instead of ``torchrun --standalone``
when no multi-node options are given. Every other option is torchrun's; the
endpoint's port 0 means "a free port".

Decision a reader may question: torch's TCPStore server binds to every
interface (``::``) whatever host it is given, so ``--standalone``,
``--rdzv-endpoint 127.0.0.1:PORT`` and ``--master-addr 127.0.0.1`` all leave
the job's store open to the network. The only way to bind it is to hand the
store a socket that is already bound (``TCPStore(master_listen_fd=...)``); we
do so through torchrun's documented extension point, a rendezvous backend
registered under its own name (``forgather-loopback``: torchrun's static
rendezvous with that store). The ranks' gloo connections are kept on the
loopback interface as well (``GLOO_SOCKET_IFNAME``, unless already set).
"""

from __future__ import annotations

import os
import socket
import sys

BACKEND = "forgather-loopback"
DEFAULT_ENDPOINT = "127.0.0.1:0"
_LOOPBACK_HOSTS = {"127.0.0.1": socket.AF_INET, "localhost": socket.AF_INET, "::1": socket.AF_INET6}
_ENDPOINT_OPTIONS = ("--rdzv-endpoint", "--rdzv_endpoint")


def split_endpoint(argv: list[str]) -> tuple[str, list[str]]:
    """The ``--rdzv-endpoint`` value among the launcher options (before ``-m``/the script), and argv without it."""
    endpoint, rest, i = DEFAULT_ENDPOINT, [], 0
    while i < len(argv):
        item = argv[i]
        if item == "-m" or not item.startswith("-"):  # the program and its own arguments
            return endpoint, rest + argv[i:]
        name, eq, value = item.partition("=")
        if name in _ENDPOINT_OPTIONS:
            endpoint = value if eq else argv[i + 1]
            i += 1 if eq else 2
            continue
        rest.append(item)
        i += 1
    return endpoint, rest


def bind_loopback(endpoint: str) -> socket.socket:
    """A listening socket on ``HOST:PORT`` (port 0: any free one); HOST must be a loopback address.

    Raises:
        SystemExit: ``endpoint`` is not ``HOST:PORT`` on a loopback address.
    """
    host, _, port = endpoint.rpartition(":")
    host = host.strip("[]")
    if host not in _LOOPBACK_HOSTS or not port.isdigit():
        raise SystemExit(
            f"loopback_torchrun: --rdzv-endpoint must be a loopback HOST:PORT "
            f"({', '.join(_LOOPBACK_HOSTS)}), got {endpoint!r}"
        )
    listener = socket.socket(_LOOPBACK_HOSTS[host], socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("::1" if host == "::1" else "127.0.0.1", int(port)))
    listener.listen(socket.SOMAXCONN)
    return listener


def _loopback_interface() -> str | None:
    names = {name for _index, name in socket.if_nameindex()}
    return next((name for name in ("lo", "lo0") if name in names), None)


def _register_backend(listener: socket.socket) -> None:
    """Register ``forgather-loopback``: the static rendezvous of one node, its store on ``listener``."""
    from torch.distributed import TCPStore
    from torch.distributed.elastic.rendezvous import rendezvous_handler_registry
    from torch.distributed.elastic.rendezvous.static_tcp_rendezvous import StaticTCPRendezvous

    host, port = listener.getsockname()[:2]

    class LoopbackRendezvous(StaticTCPRendezvous):
        def get_backend(self) -> str:
            return BACKEND

        def next_rendezvous(self):
            if self._store is None:  # the store the parent class would make, on our socket
                self._store = TCPStore(
                    host,
                    port,
                    world_size=1,
                    is_master=True,
                    timeout=self.timeout,
                    multi_tenant=True,
                    master_listen_fd=listener.fileno(),
                )
                listener.detach()  # the store owns the descriptor now (and closes it)
            return super().next_rendezvous()

    def create(params):
        timeout = int(params.config.get("timeout", 600))
        return LoopbackRendezvous(host, port, 0, 1, params.run_id, timeout)

    rendezvous_handler_registry.register(BACKEND, create)


def main(argv: list[str]) -> None:
    """Bind the store's socket, then run torchrun with the loopback backend.

    Args:
        argv: torchrun's command line (``--nproc-per-node=2 -m forgather.cli ...``),
            ``--rdzv-endpoint`` included.
    """
    endpoint, rest = split_endpoint(list(argv))
    listener = bind_loopback(endpoint)
    interface = _loopback_interface()
    if interface is not None:
        os.environ.setdefault("GLOO_SOCKET_IFNAME", interface)
    _register_backend(listener)
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    host, port = listener.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    try:
        torchrun_main(
            [f"--rdzv-backend={BACKEND}", f"--rdzv-endpoint={host}:{port}", "--nnodes=1", *rest]
        )
    except ChildFailedError as err:
        sys.exit(_report_failure(err))


def _report_failure(err) -> int:
    """One line for a failed job (the rank printed its own error above); its exit code.

    torchrun raises ``ChildFailedError``, whose traceback and table would follow the
    rank's one-line error and bury it. The code is the first failed rank's (1 for an
    error, 2 for a usage error), or 128 + N for a rank killed by signal N.
    """
    rank, failure = err.get_first_failure()
    if failure.exitcode < 0:
        how, code = f"was killed by {failure.signal_name()}", 128 - failure.exitcode
    else:
        how, code = f"exited with code {failure.exitcode}", failure.exitcode
    others = len(err.failures) - 1
    stopped = f"; {others} other rank(s) failed or were stopped" if others else ""
    print(f"forgather: rank {rank} {how} (its error is above){stopped}", file=sys.stderr)
    return code or 1


if __name__ == "__main__":
    main(sys.argv[1:])
