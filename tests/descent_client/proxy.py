"""A TCP proxy for tests, in front of a real service, that can lose a response or cut every connection.

``lose_answer_to(b"POST /v1/jobs")`` lets the next such request reach the service, then closes its
connection as the answer starts to come back, without passing it on: the client sees a dropped
connection although the service did the work. ``cut()`` closes every open connection (a network blip).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

_METHODS = (b"GET ", b"POST ", b"PUT ", b"PATCH ", b"DELETE ", b"HEAD ", b"OPTIONS ")


class _Connection:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client, self.upstream = client, upstream
        self.drop_answer = threading.Event()


class Proxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self.requests: list[bytes] = []  # the request line and first bytes of every request seen
        self._lose: bytes | None = None
        self._open: set[_Connection] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def lose_answer_to(self, prefix: bytes) -> None:
        """Drop the connection of the next request starting with ``prefix`` when its answer comes."""
        with self._lock:
            self._lose = prefix

    def cut(self) -> int:
        """Close every open connection; how many there were."""
        with self._lock:
            connections, self._open = list(self._open), set()
        for connection in connections:
            _close(connection)
        return len(connections)

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        self.cut()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            connection = _Connection(client, upstream)
            with self._lock:
                self.connections += 1
                self._open.add(connection)
            threading.Thread(target=self._requests, args=(connection,), daemon=True).start()
            threading.Thread(target=self._answers, args=(connection,), daemon=True).start()

    def _requests(self, connection: _Connection) -> None:
        try:
            for chunk in _chunks(connection.client):
                if chunk.startswith(_METHODS):
                    with self._lock:
                        self.requests.append(chunk[:4096])
                        if self._lose is not None and chunk.startswith(self._lose):
                            self._lose = None
                            connection.drop_answer.set()
                connection.upstream.sendall(chunk)
        except OSError:
            pass
        finally:
            self._end(connection)

    def _answers(self, connection: _Connection) -> None:
        try:
            for chunk in _chunks(connection.upstream):
                if connection.drop_answer.is_set():
                    break  # the service answered: lose the answer
                connection.client.sendall(chunk)
        except OSError:
            pass
        finally:
            self._end(connection)

    def _end(self, connection: _Connection) -> None:
        _close(connection)
        with self._lock:
            self._open.discard(connection)


def _close(connection: _Connection) -> None:
    for sock in (connection.client, connection.upstream):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


def _chunks(sock: socket.socket) -> Iterator[bytes]:
    while chunk := sock.recv(65536):
        yield chunk
