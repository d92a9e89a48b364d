"""HTTPS transport of the emulator (stdlib ``http.server`` + ``ssl``): one thread per connection, a listen backlog of
1024 (a thousand clients connecting at once are queued, not refused).

- HTTP/1.1 with keep-alive; every response has a ``Content-Length`` (except 204, which has no body by definition).
- The TLS handshake runs in the per-connection thread, so a client that never completes it cannot stall the accept
  loop.
- The ``reset`` fault closes the socket with ``SO_LINGER`` 0: the peer sees a TCP RST and no HTTP response.
- The ``truncated`` fault sends the status line and headers with a ``Content-Length`` of the whole body (at least 1),
  then half the body, then closes the connection (FIN, no TLS close_notify): a body cut short.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .app import EmulatorApp
from .wire import HttpRequest, HttpResponse

log = logging.getLogger(__name__)

_MAX_BODY = 16 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    """Reads one request at a time from a (TLS) keep-alive connection and hands it to the application."""

    protocol_version = "HTTP/1.1"
    server_version = "AzureBackupEmulator/1.0"
    sys_version = ""
    timeout = 300  # idle keep-alive connections give their thread back after this (Azure's front door: ~4 min)
    server: EmulatorServer

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > _MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.send_error(400, "Bad request body")
            self.close_connection = True
            return
        request = HttpRequest(self.command, self.path, list(self.headers.items()), body)
        try:
            response = self.server.app.handle(request)
        except Exception:  # a bug in the emulator must not kill the connection thread silently
            log.exception("emulator failed on %s %s", self.command, self.path)
            response = HttpResponse(
                500,
                [("Content-Type", "application/json; charset=utf-8")],
                b'{"error":{"code":"InternalServerError","message":"The emulator failed; see its log."}}',
            )
        if response.abort:
            self._abort()
            return
        self._send(response)

    def _send(self, response: HttpResponse) -> None:
        """Write status line, headers and body in one go (one TLS record, no Nagle/delayed-ACK stall)."""
        self.log_request(response.status)
        reason = self.responses.get(response.status, ("",))[0]
        lines = [
            f"{self.protocol_version} {response.status} {reason}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
        ]
        lines.extend(f"{name}: {value}" for name, value in response.headers)
        has_body = response.status >= 200 and response.status not in (204, 304)
        body = response.body if has_body else b""
        if response.truncate:
            # Promise the whole body (at least one byte), send half of it, then close.
            lines.append(f"Content-Length: {max(len(body), 1)}")
            body = body[: len(body) // 2]
            self.close_connection = True
        elif has_body:
            lines.append(f"Content-Length: {len(body)}")
        if self.close_connection and not response.truncate:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + body)
        self.wfile.flush()

    def _abort(self) -> None:
        """Drop the connection with a TCP RST: no status line, no TLS close_notify."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()


class EmulatorServer(ThreadingHTTPServer):
    request_queue_size = 1024  # listen backlog: a thousand clients connecting at once are queued, not refused
    daemon_threads = True
    block_on_close = False  # keep-alive clients must not make stop() wait
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: EmulatorApp, context: ssl.SSLContext) -> None:
        self.app = app
        self.ssl_context = context
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def close_connections(self) -> None:
        """Shut down open keep-alive connections, so a stopped emulator answers nobody."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # Runs in the connection's own thread: do the TLS handshake here, not in the accept loop.
        request.settimeout(30)
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as error:
            log.debug("TLS handshake with %s failed: %s", client_address, error)
            return
        with self._connections_lock:
            self._connections.add(tls)
        try:
            _Handler(tls, client_address, self)
        finally:
            with self._connections_lock:
                self._connections.discard(tls)
            with contextlib.suppress(OSError):
                tls.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s ended with an error", client_address, exc_info=True)


__all__ = ["EmulatorServer"]
