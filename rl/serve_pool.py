"""The HTTP plumbing of `serve-rm` that keeps slow or hostile clients from holding the server:

- a fixed pool of worker threads (no thread per connection: 300 stalled clients start no threads), with at most
  `max_connections` connections admitted at once (served or waiting for a worker); beyond that the acceptor answers
  503 + Retry-After itself and closes;
- a whole-request deadline: every socket read gets only the time left until `request_timeout_s` after the request
  began (a client trickling one byte every few seconds is cut off at the deadline, not kept alive by each byte).
"""

from __future__ import annotations

import io
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, HTTPServer

_BUSY_BODY = b'{"error": "server busy; retry"}'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
         b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(_BUSY_BODY)) + _BUSY_BODY


class DeadlineReader(io.RawIOBase):
    """A socket's reads bounded by one deadline (`restart` sets it `budget_s` ahead); past it, reads raise
    TimeoutError, which ends the request."""

    def __init__(self, sock: socket.socket, budget_s: float):
        super().__init__()
        self.sock, self.budget_s = sock, budget_s
        self.deadline = time.monotonic() + budget_s

    def restart(self) -> None:
        self.deadline = time.monotonic() + self.budget_s

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self.remaining()
        if left <= 0:
            raise TimeoutError("request deadline passed")
        self.sock.settimeout(left)
        return self.sock.recv_into(buffer)


class DeadlineHandler(BaseHTTPRequestHandler):
    """Reads each request through a `DeadlineReader`: request line, headers and body share one deadline."""

    budget_s: float = 60.0

    def setup(self) -> None:
        super().setup()
        self.reader = DeadlineReader(self.connection, self.budget_s)
        self.rfile = io.BufferedReader(self.reader)

    def handle_one_request(self) -> None:
        self.reader.restart()  # the next request on a kept-alive connection gets its own deadline
        try:
            super().handle_one_request()
        except TimeoutError:
            self.close_connection = True

    def remaining(self) -> float:
        """Seconds left of this request's deadline (at least a small positive number)."""
        return max(0.01, self.reader.remaining())


class PooledHTTPServer(HTTPServer):
    """HTTPServer whose connections are served by `workers` threads, at most `max_connections` admitted at once."""

    request_queue_size = 1024  # listen backlog: bursts of concurrent connects are queued, not reset

    def __init__(self, address, handler, *, workers: int, max_connections: int):
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="serve-rm")
        self.max_connections, self.admitted = max_connections, 0
        self._admit_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        with self._admit_lock:
            full = self.admitted >= self.max_connections
            if not full:
                self.admitted += 1
        if full:
            try:
                request.settimeout(1.0)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        self.pool.submit(self._serve, request, client_address)

    def _serve(self, request, client_address) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - as socketserver does: report, never kill the worker
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._admit_lock:
                self.admitted -= 1

    def server_close(self) -> None:
        super().server_close()
        self.pool.shutdown(wait=True)  # finish the admitted connections (graceful stop)
