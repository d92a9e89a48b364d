"""The one judge of a job's outcome, and the trigger-event schema that carries it from the triggerer to the task.

Rule: :func:`status_verdict` is the only place that says which terminal status is a success, a warning or a
failure; the sensor, the trigger and the operator all reach their verdict through it (directly on a job with
:func:`check_job_outcome`, or through an event with :func:`resolve_job_event`), and the "completed with warnings"
line is logged in one place.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from airflow_backup_provider.core.errors import (
    AzureBackupJobFailedError,
    AzureBackupTimeoutError,
    AzureBackupTriggerEventError,
)
from airflow_backup_provider.core.models import (
    BackupJob,
    BackupJobStatus,
    _as_mapping,
)

log = logging.getLogger(__name__)

EventStatus = Literal["success", "warning", "failed", "timeout", "error"]
EVENT_STATUSES: frozenset[str] = frozenset({"success", "warning", "failed", "timeout", "error"})


def status_verdict(status: str) -> EventStatus | None:
    """The verdict a terminal job status means (``success``, ``warning``, ``failed``); None for any other status."""
    if status == BackupJobStatus.COMPLETED:
        return "success"
    if status == BackupJobStatus.COMPLETED_WITH_WARNINGS:
        return "warning"
    if status in BackupJobStatus.TERMINAL_STATUSES:
        return "failed"
    return None


def job_event_status(job: BackupJob) -> EventStatus | None:
    """Map a job to the event it ends a wait with, or None while it is still running."""
    return status_verdict(job.status) if job.is_terminal else None


def verdict_fails(verdict: str, *, fail_on_warnings: bool) -> bool:
    """Whether a verdict fails the task: ``failed`` always, ``warning`` only with ``fail_on_warnings``."""
    return verdict == "failed" or (verdict == "warning" and fail_on_warnings)


def _accept(verdict: str, job_id: str, detail: str) -> None:
    """The one log line of a verdict the task accepts: a warning for "completed with warnings"."""
    if verdict == "warning":
        log.warning("Azure Backup job %s completed with warnings: %s", job_id, detail)


def describe_job_failure(job: BackupJob, item: str | None = None) -> str:
    """The message of a failed/cancelled/invalid job: id, item, error codes, errorString, recommendations."""
    what = item or job.entity_friendly_name or "(unknown item)"
    codes = ", ".join(str(e.code) for e in job.errors if e.code is not None) or "none"
    return (
        f"Azure Backup job {job.job_id} for {what} ({job.operation or 'operation ?'}) ended {job.status}; "
        f"error codes: {codes}; {job.describe_errors()}"
    )


def build_job_event(status: EventStatus, job_id: str, message: str, job: BackupJob | None = None) -> dict[str, Any]:
    event: dict[str, Any] = {"status": status, "job_id": job_id, "message": message}
    if job is not None:
        event["job_status"] = job.status
        event["summary"] = job.summary()
    return event


def validate_job_event(event: Any, expected_job_id: str | None = None) -> dict[str, Any]:
    """Check a trigger event before acting on it. A missing or unknown event fails loudly."""
    if not isinstance(event, Mapping):
        raise AzureBackupTriggerEventError(f"Trigger event is missing or not a mapping: {event!r}")
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise AzureBackupTriggerEventError(f"Trigger event has unknown status {status!r}: {dict(event)!r}")
    if not isinstance(event.get("job_id"), str) or not event["job_id"]:
        raise AzureBackupTriggerEventError(f"Trigger event has no job_id: {dict(event)!r}")
    if expected_job_id is not None and event["job_id"] != expected_job_id:
        raise AzureBackupTriggerEventError(
            f"Trigger event is for job {event['job_id']!r}, expected {expected_job_id!r}"
        )
    if status in ("success", "warning") and not isinstance(event.get("summary"), Mapping):
        raise AzureBackupTriggerEventError(f"Trigger event {status!r} carries no job summary: {dict(event)!r}")
    if not isinstance(event.get("message"), str):
        raise AzureBackupTriggerEventError(f"Trigger event has no message: {dict(event)!r}")
    return dict(event)


def check_job_outcome(job: BackupJob, *, fail_on_warnings: bool = False, item: str | None = None) -> dict[str, Any]:
    """Judge a terminal job: return its summary, or raise for Failed/Cancelled/Invalid (and warnings if asked)."""
    verdict = job_event_status(job)
    if verdict is None:
        raise ValueError(f"job {job.job_id} is still {job.status}")
    if verdict_fails(verdict, fail_on_warnings=fail_on_warnings):
        raise AzureBackupJobFailedError(
            describe_job_failure(job, item),
            job_id=job.job_id,
            status=job.status,
            error_codes=tuple(e.code for e in job.errors),
        )
    _accept(verdict, job.job_id, job.describe_errors())
    return job.summary()


def resolve_job_event(event: Any, *, job_id: str | None, fail_on_warnings: bool = False) -> dict[str, Any]:
    """Turn a validated trigger event into the job summary, or raise what the event reports."""
    checked = validate_job_event(event, job_id)
    status = checked["status"]
    if status in ("success", "warning") and not verdict_fails(status, fail_on_warnings=fail_on_warnings):
        _accept(status, checked["job_id"], checked["message"])
        return dict(checked["summary"])
    if status in ("failed", "warning"):
        summary = _as_mapping(checked.get("summary"))
        raise AzureBackupJobFailedError(
            checked["message"],
            job_id=checked["job_id"],
            status=str(checked.get("job_status") or status),
            error_codes=tuple(summary.get("error_codes") or ()),
        )
    if status == "timeout":
        raise AzureBackupTimeoutError(checked["message"])
    raise AzureBackupTriggerEventError(f"Waiting for job {checked['job_id']} failed: {checked['message']}")


def status_is_success(status: str, *, fail_on_warnings: bool = False) -> bool:
    """Completed, or CompletedWithWarnings unless warnings fail (the verdict of a bare status string)."""
    verdict = status_verdict(status)
    return verdict is not None and not verdict_fails(verdict, fail_on_warnings=fail_on_warnings)
