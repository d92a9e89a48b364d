"""Compatibility module: every public name of the former single-file protocol core, re-exported.

The core now lives in :mod:`airflow_backup_provider.core` (one module per concept); import from there in new code.
The exception names resolve to their Airflow-facing types (:mod:`airflow_backup_provider.exceptions`), as before.
"""

from __future__ import annotations

from airflow_backup_provider.core import *  # noqa: F403 (the compatibility surface is exactly the core's)
from airflow_backup_provider.core import __all__ as _core_names
from airflow_backup_provider.exceptions import (
    AzureBackupAcceptedError,
    AzureBackupApiError,
    AzureBackupAuthError,
    AzureBackupConfigError,
    AzureBackupError,
    AzureBackupForeignHostError,
    AzureBackupJobFailedError,
    AzureBackupNotFoundError,
    AzureBackupOperationError,
    AzureBackupOperationInProgressError,
    AzureBackupThrottledError,
    AzureBackupTimeoutError,
    AzureBackupTransportError,
    AzureBackupTriggerEventError,
)

__all__ = [  # noqa: PLE0604 (the core's names, then the exceptions)
    *_core_names,
    "AzureBackupAcceptedError",
    "AzureBackupApiError",
    "AzureBackupAuthError",
    "AzureBackupConfigError",
    "AzureBackupError",
    "AzureBackupForeignHostError",
    "AzureBackupJobFailedError",
    "AzureBackupNotFoundError",
    "AzureBackupOperationError",
    "AzureBackupOperationInProgressError",
    "AzureBackupThrottledError",
    "AzureBackupTimeoutError",
    "AzureBackupTransportError",
    "AzureBackupTriggerEventError",
]
