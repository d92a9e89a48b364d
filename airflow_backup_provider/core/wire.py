"""Wire types and the one request rule: actions a flow yields, the ARM error envelope, retries and ``Retry-After``.

Rule: a flow never performs I/O. It *yields* :class:`Send` (a request) or :class:`Sleep` and receives an
:class:`ApiResponse` or a :class:`TransportFailure`; :func:`call` is the only place that decides whether a response
is retried (GETs on 408/429/5xx and transport failures, POSTs only on 429 and on connect failures, one token refresh
on 401) and how an error response becomes an exception (:func:`error_from_response`).
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from airflow_backup_provider.core.errors import (
    AzureBackupApiError,
    AzureBackupAuthError,
    AzureBackupConfigError,
    AzureBackupNotFoundError,
    AzureBackupOperationInProgressError,
    AzureBackupThrottledError,
    AzureBackupTransportError,
)
from airflow_backup_provider.core.models import (
    _as_mapping,
    _str_or_none,
)

log = logging.getLogger(__name__)

OPERATION_IN_PROGRESS_CODES = frozenset({"UserErrorBackupOperationInProgress", "SystemBackupOperationInProgress"})

T = TypeVar("T")

# --------------------------------------------------------------------------------------------------------------------
# Wire types: requests, responses, actions
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRequest:
    """One HTTP request to ARM. ``expected`` are the success status codes from the spec."""

    method: Literal["GET", "POST"]
    url: str
    expected: frozenset[int]
    body: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class ApiResponse:
    """What a transport hands back: status, headers with lower-case names, raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        if not self.body.strip():
            return None
        return json.loads(self.body)

    @property
    def request_id(self) -> str | None:
        return self.header("x-ms-request-id")


TransportFailureKind = Literal["connect", "reset", "timeout"]


@dataclass(frozen=True)
class TransportFailure:
    """A request that got no HTTP response. ``connect`` means it never reached the service."""

    kind: TransportFailureKind
    detail: str


@dataclass(frozen=True)
class Send:
    """Action: send ``request`` with a bearer token (a freshly acquired one when ``refresh_token``)."""

    request: ApiRequest
    refresh_token: bool = False


@dataclass(frozen=True)
class Sleep:
    """Action: wait ``seconds`` before the next step."""

    seconds: float


Action = Send | Sleep
Outcome = ApiResponse | TransportFailure | None
Flow = Generator[Action, Outcome, T]


# --------------------------------------------------------------------------------------------------------------------
# Errors and retries
# --------------------------------------------------------------------------------------------------------------------


def parse_retry_after(response: ApiResponse, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``x-ms-retry-after-ms`` / ``Retry-After`` (seconds or HTTP date)."""
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        value = response.header(name)
        if value:
            try:
                return max(0.0, float(value) / 1000.0)
            except ValueError:
                pass
    value = response.header("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def redact_url(url: str) -> str:
    """Shorten a URL for messages: drop the (long, opaque) skip token."""
    parts = urlsplit(url)
    query = [(k, "…" if k.lower() == "$skiptoken" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, safe="$'=: "), ""))


def error_from_response(request: ApiRequest, response: ApiResponse) -> AzureBackupApiError:
    """Turn an error response (ARM envelope ``{"error": {"code", "message"}}``) into a typed exception."""
    code: str | None = None
    message = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping):
        err = _as_mapping(body.get("error")) or body
        code = _str_or_none(err.get("code"))
        message = str(err.get("message") or "")
    if not message:
        message = response.body[:500].decode("utf-8", "replace") or "(empty body)"
    status = response.status
    cls: type[AzureBackupApiError] = AzureBackupApiError
    if status in (401, 403):
        cls = AzureBackupAuthError
    elif status == 404:
        cls = AzureBackupNotFoundError
    elif status in (429, 503):
        cls = AzureBackupThrottledError
    elif code in OPERATION_IN_PROGRESS_CODES:
        cls = AzureBackupOperationInProgressError
    return cls(
        http_status=status,
        error_code=code,
        message=message,
        request_id=response.request_id,
        method=request.method,
        url=redact_url(request.url),
        retry_after=parse_retry_after(response) if status in (429, 503) else None,
    )


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries.

    - GET: retried on 408/429/5xx and on connection errors, resets and timeouts.
    - POST: retried only when the service cannot have acted: 429 and a refused connection.
    - ``Retry-After`` (capped at ``max_retry_after``) wins over the exponential backoff.
    - ``max_throttle_wait``: a 429 / 503 that asks for a longer wait is raised at once
      (:class:`AzureBackupThrottledError` with ``retry_after``) instead of slept through — for callers that hold a
      worker slot and can come back later (a reschedule-mode poke). None: sleep as above.
    - 401: the token is re-acquired once and the request repeated.
    """

    max_attempts: int = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    max_retry_after: float = 120.0
    max_throttle_wait: float | None = None

    def backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))

    def validate(self) -> RetryPolicy:
        if self.max_attempts < 1:
            raise AzureBackupConfigError("max_attempts", self.max_attempts, "must be at least 1")
        for name in ("backoff_base", "backoff_max", "max_retry_after", "max_throttle_wait"):
            value = getattr(self, name)
            if value is None and name == "max_throttle_wait":
                continue
            if not isinstance(value, (int, float)) or value < 0 or math.isnan(value):
                raise AzureBackupConfigError(name, value, "must be a non-negative number of seconds")
        return self


_GET_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
_POST_RETRY_STATUSES = frozenset({429})


def call(request: ApiRequest, policy: RetryPolicy) -> Flow[ApiResponse]:
    """Send one request under the retry policy; return the response with an expected status or raise."""
    attempt = 1
    refreshed = False
    refresh_next = False
    while True:
        outcome = yield Send(request, refresh_token=refresh_next)
        refresh_next = False
        if isinstance(outcome, TransportFailure):
            may_have_acted = outcome.kind != "connect"
            retriable = request.method == "GET" or not may_have_acted
            if retriable and attempt < policy.max_attempts:
                log.warning(
                    "%s %s: %s (%s); retrying.", request.method, redact_url(request.url), outcome.kind, outcome.detail
                )
                yield Sleep(policy.backoff(attempt))
                attempt += 1
                continue
            raise AzureBackupTransportError(
                method=request.method,
                url=redact_url(request.url),
                kind=outcome.kind,
                detail=outcome.detail,
                may_have_acted=may_have_acted,
            )
        if outcome is None:  # a driver bug, not a service answer
            raise RuntimeError("transport returned no outcome for a Send action")
        response = outcome
        if response.status in request.expected:
            return response
        if response.status == 401 and not refreshed:
            # A rejected token (expired, revoked): fetch a new one once, then repeat the request.
            log.info("Token rejected (x-ms-request-id=%s); acquiring a fresh token.", response.request_id)
            refreshed = refresh_next = True
            continue
        retry_statuses = _GET_RETRY_STATUSES if request.method == "GET" else _POST_RETRY_STATUSES
        if response.status in retry_statuses and attempt < policy.max_attempts:
            retry_after = parse_retry_after(response)
            delay = min(retry_after, policy.max_retry_after) if retry_after is not None else policy.backoff(attempt)
            asked = retry_after if retry_after is not None else delay
            if (
                response.status in (429, 503)
                and policy.max_throttle_wait is not None
                and asked > policy.max_throttle_wait
            ):
                raise error_from_response(request, response)  # the caller comes back later, its slot freed
            log.warning(
                "%s %s answered %s (x-ms-request-id=%s); retrying in %.1f s (attempt %d of %d).",
                request.method,
                redact_url(request.url),
                response.status,
                response.request_id,
                delay,
                attempt + 1,
                policy.max_attempts,
            )
            yield Sleep(delay)
            attempt += 1
            continue
        raise error_from_response(request, response)


def call_parsed(request: ApiRequest, policy: RetryPolicy, parse: Callable[[Any], T]) -> Flow[T]:
    """Send a request and parse its JSON body; a body of the wrong shape is an API error, not a crash."""
    response = yield from call(request, policy)
    return _parse_body(request, response, parse)


def _parse_body(request: ApiRequest, response: ApiResponse, parse: Callable[[Any], T]) -> T:
    try:
        return parse(response.json())
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise AzureBackupApiError(
            http_status=response.status,
            error_code=None,
            message=f"unexpected response body: {exc}",
            request_id=response.request_id,
            method=request.method,
            url=redact_url(request.url),
        ) from exc
