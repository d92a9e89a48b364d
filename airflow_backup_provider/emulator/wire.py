"""HTTP value types shared by every part of the emulator (no sockets): the request, the response, ARM's error
envelope and the parsed request-target."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

JSON_CONTENT_TYPE = "application/json; charset=utf-8"


def first_header(headers: list[tuple[str, str]], name: str) -> str | None:
    """The first value of header ``name`` in ``headers`` (case-insensitive), or None."""
    lowered = name.lower()
    for key, value in headers:
        if key.lower() == lowered:
            return value
    return None


@dataclass
class HttpRequest:
    """A fully read request. ``headers`` keeps the client's spelling; look-ups go through :meth:`header`."""

    method: str
    target: str  # request-target as sent: path plus optional query
    headers: list[tuple[str, str]]
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None.

        :param name: the header name.
        """
        return first_header(self.headers, name)


@dataclass
class HttpResponse:
    """A response to write; ``abort`` resets the connection instead of answering (``reset`` faults); ``truncate``
    sends the headers with the full ``Content-Length`` but only half the body, then closes (``truncated`` fault)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    abort: bool = False
    truncate: bool = False

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None.

        :param name: the header name.
        """
        return first_header(self.headers, name)


def json_response(status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
    """A compact JSON response.

    :param status: the HTTP status.
    :param payload: anything ``json.dumps`` takes.
    :param headers: extra headers after ``Content-Type``.
    """
    body = json.dumps(payload, separators=(",", ":")).encode()
    return HttpResponse(status, [("Content-Type", JSON_CONTENT_TYPE), *(headers or [])], body)


class ArmError(Exception):
    """An ARM error envelope ``{"error": {"code", "message"}}`` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or []

    def response(self) -> HttpResponse:
        """The error as ARM sends it."""
        return json_response(self.status, {"error": {"code": self.code, "message": self.message}}, self.headers)


@dataclass
class Target:
    """A parsed request-target."""

    raw_path: str
    path: str
    segments: list[str]  # percent-decoded
    query: dict[str, str]  # last value wins
    query_lower: dict[str, str]  # keys lower-cased ($skipToken vs $skiptoken)


def parse_target(target: str) -> Target:
    """Split a request-target into its raw path, decoded path and segments, and query.

    :param target: the request-target as sent (path and optional query).
    """
    parts = urlsplit(target)
    raw_path = parts.path or "/"
    raw_segments = [s for s in raw_path.split("/") if s]
    segments = [unquote(s) for s in raw_segments]
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    return Target(
        raw_path=raw_path,
        path="/" + "/".join(segments),
        segments=segments,
        query=query,
        query_lower={k.lower(): v for k, v in query.items()},
    )


__all__ = ["JSON_CONTENT_TYPE", "ArmError", "HttpRequest", "HttpResponse", "Target", "json_response", "parse_target"]
