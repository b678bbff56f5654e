"""A TCP proxy that can take an endpoint down: the S3 outage suite puts it between the stack and moto.

moto keeps its objects in memory, so stopping the real server would also erase what the test must inspect
afterwards (no half-written artifact at the final keys). The proxy fails the way a dead endpoint does while moto
keeps its state: once ``trip`` appears in a request (e.g. the first PUT of one checkpoint) it cuts every open
connection before those bytes reach moto, and while down it accepts and at once resets each new connection,
recording when, so the test can count the client's retries. ``restore()`` brings it back.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

from tests.servers import free_port


class FlakyProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.trip: bytes | None = None
        self.tripped_at: float | None = None
        self.refused: list[float] = []  # monotonic times of connections reset while down
        self._down = threading.Event()
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def restore(self) -> None:
        self._down.clear()

    def close(self) -> None:
        self._listener.close()
        self._cut_all()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            if self._down.is_set():
                self.refused.append(time.monotonic())
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, as a dead peer
                conn.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                conn.close()
                continue
            with self._lock:
                self._open |= {conn, upstream}
            threading.Thread(target=self._pipe, args=(conn, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, conn, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        try:
            while data := src.recv(65536):
                if from_client and self.trip is not None and self.trip in data and not self._down.is_set():
                    self.tripped_at = time.monotonic()
                    self._down.set()
                    self._cut_all()
                    return
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _cut_all(self) -> None:
        with self._lock:
            sockets, self._open = self._open, set()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)  # wakes the pipe thread blocked in recv (close alone would not)
            except OSError:
                pass
            s.close()
