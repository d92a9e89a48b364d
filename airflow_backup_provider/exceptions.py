"""Exceptions raised by the Azure Backup provider, as Airflow sees them (the edge of the Airflow-free core).

Every exception subclasses :class:`AzureBackupError` (an ``AirflowException``), so Airflow marks the task failed
and retries it as configured. None of them ever carries a token or a secret: messages name fields, values, HTTP
status, Azure error code and the ``x-ms-request-id`` needed to open a support case.

Each type here is the Airflow-facing twin of the type of the same name in :mod:`airflow_backup_provider.core.errors`
(it subclasses both that type and ``AirflowException``). Importing this module registers the twins, so whatever the
core raises is an instance of the type here: ``except`` clauses written against either module catch it.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException

from airflow_backup_provider.core import errors as _core


class AzureBackupError(_core.AzureBackupError, AirflowException):
    __doc__ = _core.AzureBackupError.__doc__


class AzureBackupConfigError(_core.AzureBackupConfigError, AzureBackupError):
    __doc__ = _core.AzureBackupConfigError.__doc__


class AzureBackupApiError(_core.AzureBackupApiError, AzureBackupError):
    __doc__ = _core.AzureBackupApiError.__doc__


class AzureBackupAuthError(_core.AzureBackupAuthError, AzureBackupApiError):
    __doc__ = _core.AzureBackupAuthError.__doc__


class AzureBackupNotFoundError(_core.AzureBackupNotFoundError, AzureBackupApiError):
    __doc__ = _core.AzureBackupNotFoundError.__doc__


class AzureBackupThrottledError(_core.AzureBackupThrottledError, AzureBackupApiError):
    __doc__ = _core.AzureBackupThrottledError.__doc__


class AzureBackupOperationInProgressError(_core.AzureBackupOperationInProgressError, AzureBackupApiError):
    __doc__ = _core.AzureBackupOperationInProgressError.__doc__


class AzureBackupTransportError(_core.AzureBackupTransportError, AzureBackupError):
    __doc__ = _core.AzureBackupTransportError.__doc__


class AzureBackupForeignHostError(_core.AzureBackupForeignHostError, AzureBackupError):
    __doc__ = _core.AzureBackupForeignHostError.__doc__


class AzureBackupOperationError(_core.AzureBackupOperationError, AzureBackupError):
    __doc__ = _core.AzureBackupOperationError.__doc__


class AzureBackupAcceptedError(_core.AzureBackupAcceptedError, AzureBackupError):
    __doc__ = _core.AzureBackupAcceptedError.__doc__


class AzureBackupTimeoutError(_core.AzureBackupTimeoutError, AzureBackupError):
    __doc__ = _core.AzureBackupTimeoutError.__doc__


class AzureBackupJobFailedError(_core.AzureBackupJobFailedError, AzureBackupError):
    __doc__ = _core.AzureBackupJobFailedError.__doc__


class AzureBackupTriggerEventError(_core.AzureBackupTriggerEventError, AzureBackupError):
    __doc__ = _core.AzureBackupTriggerEventError.__doc__


_core.register_edge_types(
    {
        _core.AzureBackupError: AzureBackupError,
        _core.AzureBackupConfigError: AzureBackupConfigError,
        _core.AzureBackupApiError: AzureBackupApiError,
        _core.AzureBackupAuthError: AzureBackupAuthError,
        _core.AzureBackupNotFoundError: AzureBackupNotFoundError,
        _core.AzureBackupThrottledError: AzureBackupThrottledError,
        _core.AzureBackupOperationInProgressError: AzureBackupOperationInProgressError,
        _core.AzureBackupTransportError: AzureBackupTransportError,
        _core.AzureBackupForeignHostError: AzureBackupForeignHostError,
        _core.AzureBackupOperationError: AzureBackupOperationError,
        _core.AzureBackupAcceptedError: AzureBackupAcceptedError,
        _core.AzureBackupTimeoutError: AzureBackupTimeoutError,
        _core.AzureBackupJobFailedError: AzureBackupJobFailedError,
        _core.AzureBackupTriggerEventError: AzureBackupTriggerEventError,
    }
)


class AzureBackupVerificationError(AzureBackupError):
    """A backup failed verification; the message lists every failed check, ``report`` holds the full report."""

    def __init__(self, message: str, *, report: dict[str, Any]) -> None:
        self.report = report
        super().__init__(message)


class AzureBackupHealthCheckError(AzureBackupError):
    """The nightly health check found unhealthy items (or could not read a vault); ``report`` holds the report."""

    def __init__(self, message: str, *, report: dict[str, Any]) -> None:
        self.report = report
        super().__init__(message)
