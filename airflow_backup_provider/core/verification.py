"""Pure checks behind :class:`~airflow_backup_provider.operators.verify.VerifyBackupOperator` (no Airflow, no I/O).

Each check returns a :class:`Check` (``name``, ``ok``, ``detail``); :func:`build_verification_report` turns them into
the report the operator returns. The item-health rules (:func:`item_health_problems`) are shared with the nightly
health check (:mod:`airflow_backup_provider.core.health`).

Field semantics follow ``bms.json`` (api-version 2026-10-01):

- ``protectionState`` (``ProtectionState``): only ``Protected`` is good.
- ``healthStatus`` (``HealthStatus``, IaaS VM items only): ``Passed`` (or ``ActionSuggested``) is good.
- ``protectedItemHealthStatus`` (``ProtectedItemHealthStatus``, workload items only): ``Healthy`` is good.
- ``lastBackupStatus``: a free string on IaaS VM items (``Completed``, ``CompletedWithWarnings``, ``Failed``...); the
  ``LastBackupStatus`` enum (``Healthy`` / ``Unhealthy`` / ``IRPending`` / ``Invalid``) on workload and file-share
  items. An empty value with ``lastBackupTime`` ``2001-01-01T00:00:00Z`` is the service's "never backed up" sentinel.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow_backup_provider.exceptions import AzureBackupConfigError
from airflow_backup_provider.protocol import BackupJob, BackupJobStatus, ProtectedItem, RecoveryPoint, parse_datetime

JOB_SUCCEEDED = "job_succeeded"
RECOVERY_POINT_EXISTS = "recovery_point_exists"
ITEM_HEALTHY = "item_healthy"
RECOVERY_POINT_RECENT = "recovery_point_recent"

# lastBackupTime of an item that was never backed up (docs: a freshly protected VM).
NEVER_BACKED_UP_SENTINEL = "2001-01-01"

PROTECTED = "Protected"
# protectionState values that mean "no more scheduled backups" / "broken"; everything else but Protected is pending.
PROTECTION_STOPPED_STATES = frozenset({"ProtectionStopped", "ProtectionPaused", "BackupsSuspended"})
PROTECTION_ERROR_STATES = frozenset({"ProtectionError", "Invalid"})
# healthStatus (HealthStatus, IaaS VM items)
GOOD_HEALTH_STATUSES = frozenset({"Passed", "ActionSuggested"})
# protectedItemHealthStatus (ProtectedItemHealthStatus, workload items)
GOOD_ITEM_HEALTH_STATUSES = frozenset({"Healthy"})
# lastBackupStatus of IaaS VM items is a job status string.
VM_GOOD_LAST_BACKUP = frozenset({BackupJobStatus.COMPLETED, BackupJobStatus.COMPLETED_WITH_WARNINGS})
# lastBackupStatus of workload / file-share items is the LastBackupStatus enum.
ENUM_GOOD_LAST_BACKUP = frozenset({"Healthy"})


@dataclass(frozen=True)
class Check:
    """The outcome of one named verification check."""

    name: str
    ok: bool
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail}


def coerce_timedelta(fieldname: str, value: Any, *, unit: timedelta, allow_none: bool = False) -> timedelta | None:
    """A duration given as a ``timedelta`` or a number of ``unit`` (also a numeric string, e.g. a rendered template).

    :raises AzureBackupConfigError: naming the field and value for anything else, zero or negative.
    """
    if value is None or (isinstance(value, str) and not value.strip() and allow_none):
        if allow_none:
            return None
        raise AzureBackupConfigError(fieldname, value, "is required")
    if isinstance(value, timedelta):
        result = value
    else:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise AzureBackupConfigError(fieldname, value, "must be a timedelta or a number")
        try:
            number = float(value.strip() if isinstance(value, str) else value)
        except ValueError:
            raise AzureBackupConfigError(fieldname, value, "must be a timedelta or a number") from None
        if not math.isfinite(number) or number <= 0:
            raise AzureBackupConfigError(fieldname, value, "must be positive")
        result = unit * number
    if result <= timedelta(0):
        raise AzureBackupConfigError(fieldname, value, "must be positive")
    return result


def _props(item: ProtectedItem) -> Mapping[str, Any]:
    props = item.raw.get("properties") if isinstance(item.raw, Mapping) else None
    return props if isinstance(props, Mapping) else {}


def item_kind(item: ProtectedItem) -> str:
    """``vm``, ``workload``, ``fileshare`` or ``other``: decides what ``lastBackupStatus`` means."""
    bmt = (item.backup_management_type or "").lower()
    pit = (item.protected_item_type or "").lower()
    if bmt == "azureiaasvm" or "virtualmachines" in pit or pit == "azureiaasvmprotecteditem":
        return "vm"
    if bmt == "azureworkload" or pit.startswith("azurevmworkload"):
        return "workload"
    if bmt == "azurestorage" or pit == "azurefileshareprotecteditem":
        return "fileshare"
    return "other"


def never_backed_up(item: ProtectedItem) -> bool:
    """The item has no backup at all: the ``2001-01-01`` sentinel, no time, or an initial backup still pending."""
    raw_time = _props(item).get("lastBackupTime")
    if isinstance(raw_time, str) and raw_time.startswith(NEVER_BACKED_UP_SENTINEL):
        return True
    if item.last_backup_status == "IRPending" or item.protection_state == "IRPending":
        return True
    return item.last_backup_time is None and last_successful_backup_time(item) is None


def last_successful_backup_time(item: ProtectedItem) -> datetime | None:
    """When the item's newest recovery point was made (``lastRecoveryPoint``), else its last good backup's time."""
    point = parse_datetime(_props(item).get("lastRecoveryPoint"))
    if point is not None:
        return point
    if last_backup_status_ok(item) is True:
        return item.last_backup_time
    return None


def last_backup_status_ok(item: ProtectedItem) -> bool | None:
    """Whether ``lastBackupStatus`` is good for the item's type; None when it is empty (never backed up / unknown)."""
    status = item.last_backup_status
    if not status:
        return None
    kind = item_kind(item)
    if kind == "vm":
        # A free string on IaaS VM items; some api-versions answer the enum's Healthy there too.
        return status in VM_GOOD_LAST_BACKUP or status in ENUM_GOOD_LAST_BACKUP
    if kind in ("workload", "fileshare"):
        return status in ENUM_GOOD_LAST_BACKUP
    return status in VM_GOOD_LAST_BACKUP or status in ENUM_GOOD_LAST_BACKUP


def item_health_problems(item: ProtectedItem) -> list[str]:
    """Everything wrong with a protected item, each as a readable phrase (empty: healthy)."""
    problems: list[str] = []
    props = _props(item)
    state = item.protection_state
    if state != PROTECTED:
        problems.append(f"protectionState is {state or '(missing)'}, not Protected")
    health = props.get("healthStatus")
    if health is not None and health not in GOOD_HEALTH_STATUSES:
        problems.append(f"healthStatus is {health}")
    item_health = props.get("protectedItemHealthStatus")
    if item_health is not None and item_health not in GOOD_ITEM_HEALTH_STATUSES:
        problems.append(f"protectedItemHealthStatus is {item_health}")
    raw_time = props.get("lastBackupTime")
    if isinstance(raw_time, str) and raw_time.startswith(NEVER_BACKED_UP_SENTINEL):
        problems.append(f"never backed up (lastBackupTime {raw_time})")
    else:
        ok = last_backup_status_ok(item)
        if ok is None:
            problems.append("lastBackupStatus is empty (never backed up?)")
        elif not ok:
            problems.append(f"lastBackupStatus is {item.last_backup_status} ({item_kind(item)} item)")
    error = props.get("lastBackupErrorDetail")
    if problems and isinstance(error, Mapping) and (error.get("code") or error.get("message")):
        problems.append(f"last backup error {error.get('code') or '?'}: {error.get('message') or ''}".strip())
    return problems


def check_job_succeeded(job: BackupJob, *, allow_warnings: bool) -> Check:
    """The job is a finished backup that ended ``Completed`` (or ``CompletedWithWarnings`` when allowed)."""
    if job.operation and job.operation != "Backup":
        return Check(JOB_SUCCEEDED, False, f"job {job.job_id} is a {job.operation} job, not a backup")
    status = job.status
    if status == BackupJobStatus.COMPLETED:
        return Check(JOB_SUCCEEDED, True, f"job {job.job_id} ended Completed")
    if status == BackupJobStatus.COMPLETED_WITH_WARNINGS:
        if allow_warnings:
            return Check(JOB_SUCCEEDED, True, f"job {job.job_id} ended CompletedWithWarnings: {job.describe_errors()}")
        return Check(
            JOB_SUCCEEDED,
            False,
            f"job {job.job_id} ended CompletedWithWarnings and warnings are not allowed: {job.describe_errors()}",
        )
    if status in BackupJobStatus.FAILURE_STATUSES:
        return Check(JOB_SUCCEEDED, False, f"job {job.job_id} ended {status}: {job.describe_errors()}")
    return Check(JOB_SUCCEEDED, False, f"job {job.job_id} has not finished: it is {status}")


def newest_point(points: Iterable[RecoveryPoint]) -> RecoveryPoint | None:
    dated = [p for p in points if p.recovery_point_time is not None]
    return max(dated, key=lambda p: p.recovery_point_time) if dated else None  # type: ignore[arg-type,return-value]


def check_recovery_point_exists(
    points: Sequence[RecoveryPoint], job_start: datetime | None, item_name: str
) -> tuple[Check, RecoveryPoint | None]:
    """A recovery point of the item made at or after the job's start; returns the newest such point."""
    if job_start is None:
        return Check(RECOVERY_POINT_EXISTS, False, "the job has no start time to compare recovery points with"), None
    since = [p for p in points if p.recovery_point_time is not None and p.recovery_point_time >= job_start]
    point = newest_point(since)
    if point is None:
        older = newest_point(points)
        before = (
            f"; the newest is {older.recovery_point_id} at {older.recovery_point_time.isoformat()}"  # type: ignore[union-attr]
            if older is not None
            else ""
        )
        return (
            Check(
                RECOVERY_POINT_EXISTS,
                False,
                f"no recovery point of {item_name} at or after the job start {job_start.isoformat()}{before}",
            ),
            None,
        )
    assert point.recovery_point_time is not None
    return (
        Check(
            RECOVERY_POINT_EXISTS,
            True,
            f"recovery point {point.recovery_point_id} at {point.recovery_point_time.isoformat()}"
            f" ({len(since)} since the job start)",
        ),
        point,
    )


def check_item_healthy(item: ProtectedItem) -> Check:
    problems = item_health_problems(item)
    name = item.friendly_name or item.protected_item_name
    if problems:
        return Check(ITEM_HEALTHY, False, f"{name}: " + "; ".join(problems))
    return Check(
        ITEM_HEALTHY,
        True,
        f"{name}: {item.protection_state}, lastBackupStatus {item.last_backup_status}"
        + (f", healthStatus {_props(item)['healthStatus']}" if _props(item).get("healthStatus") else ""),
    )


def check_recovery_point_recent(
    points: Sequence[RecoveryPoint], max_age: timedelta, now: datetime, item_name: str
) -> Check:
    """The item's newest recovery point is at most ``max_age`` old."""
    newest = newest_point(points)
    if newest is None or newest.recovery_point_time is None:
        return Check(RECOVERY_POINT_RECENT, False, f"no recovery point of {item_name} in the last {max_age}")
    age = now - newest.recovery_point_time
    text = f"newest recovery point {newest.recovery_point_id} is {_age(age)} old (limit {_age(max_age)})"
    return Check(RECOVERY_POINT_RECENT, age <= max_age, text)


def _age(value: timedelta) -> str:
    seconds = int(max(0.0, value.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


def build_verification_report(
    *,
    job: BackupJob,
    item_name: str,
    checks: Sequence[Check],
    recovery_point: RecoveryPoint | None,
) -> dict[str, Any]:
    """The operator's return value (and the ``verification`` XCom)."""
    return {
        "ok": all(c.ok for c in checks),
        "job_id": job.job_id,
        "item": item_name,
        "status": job.status,
        "recovery_point_id": recovery_point.recovery_point_id if recovery_point else None,
        "recovery_point_time": (
            recovery_point.recovery_point_time.isoformat()
            if recovery_point and recovery_point.recovery_point_time
            else None
        ),
        "checks": [c.to_dict() for c in checks],
    }


def verification_failure_message(report: Mapping[str, Any]) -> str:
    """Every failed check with its detail, for the exception."""
    failed = [c for c in report.get("checks", ()) if not c.get("ok")]
    lines = "; ".join(f"{c['name']}: {c['detail']}" for c in failed)
    return (
        f"Verification of backup job {report.get('job_id')} of {report.get('item')} failed "
        f"{len(failed)} check(s): {lines}"
    )
