"""How a task hands its job wait to the triggerer: the one place a :class:`BackupJobTrigger` is built.

Rule: the trigger enforces the deadline itself (so it can cancel the job), hence no framework timeout on the
deferral, and a job is cancelled on timeout and on kill only when the task asks (never a job it only attached to).
The trigger module, and with it the async stack, is imported here when a task defers, on the worker: never by a
reschedule poke, and never on the triggerer's event loop (the triggerer imports the trigger module by its path).
"""

from __future__ import annotations

import time
from typing import Any, NoReturn, Protocol


class JobWaitingTask(Protocol):
    """What :func:`defer_job_wait` reads from the operator or sensor that defers."""

    azure_backup_conn_id: str
    resource_group_name: str | None
    vault_name: str | None
    hook_params: dict[str, Any]

    def defer(self, *, trigger: Any, method_name: str, kwargs: Any = ..., timeout: Any = ...) -> NoReturn: ...


def defer_job_wait(
    task: JobWaitingTask, *, job_id: str, timeout: float, poll_interval: float, cancel: bool
) -> NoReturn:
    """Defer ``task`` until job ``job_id`` ends or ``timeout`` seconds pass; resume in ``execute_complete``.

    :param cancel: Cancel the job when the deadline passes or the deferred task is killed.
    """
    from airflow_backup_provider.triggers.backup import BackupJobTrigger

    task.defer(
        trigger=BackupJobTrigger(
            job_id=job_id,
            azure_backup_conn_id=task.azure_backup_conn_id,
            end_time=time.time() + timeout,
            poll_interval=poll_interval,
            resource_group_name=task.resource_group_name,
            vault_name=task.vault_name,
            cancel_on_timeout=cancel,
            cancel_on_kill=cancel,
            hook_params=task.hook_params,
        ),
        method_name="execute_complete",
        timeout=None,
    )
