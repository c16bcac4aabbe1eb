"""A TCP relay on 127.0.0.1 in front of a server, whose open connections a test can cut: the network
fault a client must survive (a proxy restarting, a phone changing networks), made on demand. It passes
bytes through unchanged and keeps what clients sent, so a test can read the requests they made."""

from __future__ import annotations

import contextlib
import socket
import threading

from tests.e2e.server import free_port


class CuttableProxy:
    """Relays 127.0.0.1:``port`` to ``upstream_port``; ``cut()`` drops every open connection."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._sent = bytearray()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def sent(self) -> str:
        """Everything clients have sent so far (request lines, headers, bodies)."""
        with self._lock:
            return self._sent.decode(errors="replace")

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._open += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client:
                    with self._lock:
                        self._sent += data
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Close every connection open now, both ways, without a goodbye."""
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._listener.close()
        self.cut()
