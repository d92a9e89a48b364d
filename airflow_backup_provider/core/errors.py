"""The errors the core raises, free of any framework: this module imports nothing beyond the standard library.

Rule: every failure the provider reports is one of these types, and none of them ever carries a token or a secret
(messages name fields, values, HTTP status, Azure error code and the ``x-ms-request-id`` of a support case).

Airflow-facing twins live at the edge, :mod:`airflow_backup_provider.exceptions`: each public name there subclasses
the type here *and* ``AirflowException``, and registers itself with :func:`register_edge_types`. From then on,
constructing a core type builds its edge twin (see :meth:`AzureBackupError.__new__`), so ``except`` clauses written
against either module catch what the core raises, and without Airflow the core raises the plain types below.
"""

from __future__ import annotations

from typing import Any

# core type -> the edge type instantiated in its place (filled by airflow_backup_provider.exceptions).
_EDGE_TYPES: dict[type[BaseException], type[BaseException]] = {}


def register_edge_types(mapping: dict[type[AzureBackupError], type[AzureBackupError]]) -> None:
    """Make every later construction of a core error type build its edge twin (a subclass of it) instead."""
    for core_type, edge_type in mapping.items():
        if not issubclass(edge_type, core_type):
            raise TypeError(f"{edge_type.__name__} must subclass {core_type.__name__}")
        _EDGE_TYPES[core_type] = edge_type


class AzureBackupError(Exception):
    """Base class of every error raised by this provider."""

    def __new__(cls, *args: Any, **kwargs: Any) -> AzureBackupError:
        return super().__new__(_EDGE_TYPES.get(cls, cls), *args, **kwargs)  # type: ignore[return-value]


class AzureBackupConfigError(AzureBackupError, ValueError):
    """Bad input: an argument or a connection field is missing or invalid. The message names field and value."""

    def __init__(self, field: str, value: Any, problem: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field}={value!r}: {problem}")


class AzureBackupApiError(AzureBackupError):
    """Azure answered with an error (the ARM error envelope ``{"error": {"code", "message"}}``)."""

    def __init__(
        self,
        *,
        http_status: int,
        error_code: str | None,
        message: str,
        request_id: str | None,
        method: str,
        url: str,
        retry_after: float | None = None,
    ) -> None:
        self.http_status = http_status
        self.retry_after = retry_after  # seconds the service asked to wait (429 / 503), when it said so
        self.error_code = error_code
        self.error_message = message
        self.request_id = request_id
        self.method = method
        self.url = url
        super().__init__(
            f"Azure Backup API error: HTTP {http_status} {error_code or '(no code)'}: {message} "
            f"[{method} {url}; x-ms-request-id={request_id or '-'}]"
        )


class AzureBackupAuthError(AzureBackupApiError):
    """401 / 403 from Azure Resource Manager (token rejected, or the principal lacks a role on the vault)."""


class AzureBackupNotFoundError(AzureBackupApiError):
    """404: the vault, item, job or operation does not exist (or is not visible yet)."""


class AzureBackupThrottledError(AzureBackupApiError):
    """429 / 503 still answered after the bounded number of retries."""


class AzureBackupOperationInProgressError(AzureBackupApiError):
    """400 ``UserErrorBackupOperationInProgress``: a backup of this item is already running."""


class AzureBackupTransportError(AzureBackupError):
    """The request could not be completed at the HTTP level (connection refused, reset, timeout)."""

    def __init__(self, *, method: str, url: str, kind: str, detail: str, may_have_acted: bool) -> None:
        self.method = method
        self.url = url
        self.kind = kind
        self.may_have_acted = may_have_acted
        suffix = (
            " The service may have acted on this request, so it was not retried."
            if may_have_acted and method != "GET"
            else ""
        )
        super().__init__(f"{method} {url} failed ({kind}): {detail}.{suffix}")


class AzureBackupForeignHostError(AzureBackupError):
    """A ``Location`` / ``Azure-AsyncOperation`` / ``nextLink`` URL points at a host other than the ARM host."""

    def __init__(self, *, source: str, url_host: str, arm_host: str) -> None:
        self.source = source
        self.url_host = url_host
        self.arm_host = arm_host
        super().__init__(
            f"Refusing to follow {source} on host {url_host!r}: it is not the configured Resource Manager host "
            f"{arm_host!r}, and the bearer token is only ever sent there."
        )


class AzureBackupOperationError(AzureBackupError):
    """The asynchronous operation behind a trigger/cancel/restore ended Failed, Canceled or Invalid."""

    def __init__(
        self,
        *,
        operation_id: str,
        status: str,
        error_code: str | None,
        message: str | None,
        job_id: str | None = None,
    ) -> None:
        self.operation_id = operation_id
        self.status = status
        self.error_code = error_code
        self.job_id = job_id
        job = f" (job {job_id})" if job_id else ""
        super().__init__(
            f"Azure Backup operation {operation_id}{job} ended {status}: {error_code or '(no code)'}: {message or ''}"
        )


class AzureBackupAcceptedError(AzureBackupError):
    """Azure accepted a trigger (202) but following its operation to the job id failed.

    The backup may well be running: callers must look for its job instead of triggering again.
    """

    def __init__(self, *, operation_id: str, cause: AzureBackupError) -> None:
        self.operation_id = operation_id
        self.cause = cause
        super().__init__(
            f"Azure accepted the request (operation {operation_id}), but following it to the job id failed: {cause}"
        )


class AzureBackupTimeoutError(AzureBackupError):
    """A wait (operation or job) ran past its deadline."""


class AzureBackupJobFailedError(AzureBackupError):
    """A backup job reached Failed, Cancelled or Invalid (or CompletedWithWarnings with ``fail_on_warnings``)."""

    def __init__(self, message: str, *, job_id: str, status: str, error_codes: tuple[int | None, ...] = ()) -> None:
        self.job_id = job_id
        self.status = status
        self.error_codes = error_codes
        super().__init__(message)


class AzureBackupTriggerEventError(AzureBackupError):
    """A deferred task resumed with a missing or malformed trigger event."""
