"""Typed, frozen views of what the service answers: job and operation statuses, jobs, items, recovery points, vaults.

Rule: parsing never fails on a field the service adds, renames or leaves out: unknown statuses read as still running
(``Unknown``), statuses are compared case-insensitively through :func:`canonical_status`, timestamps and durations
that do not parse are ``None``. Nothing here sends, sleeps or judges an outcome (that is :mod:`.verdicts`).
It is ~500 lines because it holds one frozen dataclass and one parser per resource type (job, operation, item,
recovery point, vault), which share the parsing helpers and the status tables; splitting them would scatter those.

Spec: ``tests/spec/bms.json`` (api-version 2026-10-01) and its x-ms-examples.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------------------------
# Status rules
# --------------------------------------------------------------------------------------------------------------------


class BackupJobStatus:
    """Status of a backup job (``Job.status``; spelled ``Cancelled`` with two l's)."""

    IN_PROGRESS = "InProgress"
    CANCELLING = "Cancelling"
    COMPLETED = "Completed"
    COMPLETED_WITH_WARNINGS = "CompletedWithWarnings"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    INVALID = "Invalid"

    NON_TERMINAL_STATUSES = frozenset({IN_PROGRESS, CANCELLING})
    TERMINAL_STATUSES = frozenset({COMPLETED, COMPLETED_WITH_WARNINGS, FAILED, CANCELLED, INVALID})
    SUCCESS_STATUSES = frozenset({COMPLETED, COMPLETED_WITH_WARNINGS})
    FAILURE_STATUSES = frozenset({FAILED, CANCELLED, INVALID})
    ALL_STATUSES = NON_TERMINAL_STATUSES | TERMINAL_STATUSES

    @classmethod
    def is_terminal(cls, status: str) -> bool:
        """Return True for a terminal status. An unknown status is non-terminal, with a warning."""
        if status in cls.TERMINAL_STATUSES:
            return True
        if status not in cls.NON_TERMINAL_STATUSES:
            log.warning("Unknown Azure Backup job status %r; treating it as still running.", status)
        return False


class OperationStatusValue:
    """Status of an asynchronous operation (``OperationStatusValues``; spelled ``Canceled`` with one l)."""

    INVALID = "Invalid"
    IN_PROGRESS = "InProgress"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELED = "Canceled"

    FAILURE_STATUSES = frozenset({FAILED, CANCELED, INVALID})
    ALL_STATUSES = frozenset({INVALID, IN_PROGRESS, SUCCEEDED, FAILED, CANCELED})


def canonical_status(value: Any, known: Iterable[str], default: str = "Unknown") -> str:
    """A status in the spec's spelling: the service documents PascalCase, but ``completed`` means Completed too.

    Every status comparison in this package runs on parsed objects, so this is the one place case is handled.
    """
    text = str(value).strip() if value is not None and str(value).strip() else default
    folded = text.casefold()
    return next((name for name in known if name.casefold() == folded), text)


JOB_OPERATIONS = frozenset(
    {
        "Invalid",
        "Register",
        "UnRegister",
        "ConfigureBackup",
        "Backup",
        "Restore",
        "DisableBackup",
        "DeleteBackupData",
        "CrossRegionRestore",
        "Undelete",
        "UpdateCustomerManagedKey",
    }
)
BACKUP_MANAGEMENT_TYPES = frozenset(
    {
        "Invalid",
        "AzureIaasVM",
        "MAB",
        "DPM",
        "AzureBackupServer",
        "AzureSql",
        "AzureStorage",
        "AzureWorkload",
        "DefaultBackup",
    }
)
BACKUP_TYPES = frozenset(
    {"Full", "Differential", "Log", "CopyOnlyFull", "Incremental", "SnapshotFull", "SnapshotCopyOnlyFull"}
)
BACKUP_REQUEST_TYPES = frozenset({"IaasVMBackupRequest", "AzureFileShareBackupRequest", "AzureWorkloadBackupRequest"})


# --------------------------------------------------------------------------------------------------------------------
# Parsing helpers
# --------------------------------------------------------------------------------------------------------------------

_SENTINEL_YEARS = (1, 2001)  # 0001-01-01 (task not started) and 2001-01-01 (never backed up)
_ISO_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
_TIMESPAN = re.compile(r"^(?:(?P<days>\d+)\.)?(?P<hours>\d{1,2}):(?P<minutes>\d{2}):(?P<seconds>\d{2}(?:\.\d+)?)$")


def parse_datetime(value: Any) -> datetime | None:
    """Parse an ARM timestamp (7-digit fractions, ``Z`` or offset). Sentinel dates and garbage give ``None``."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    match = re.match(r"^(?P<base>[^.+]+(?:T[^.+-]+)?)(?:\.(?P<frac>\d+))?(?P<tz>[+-]\d{2}:\d{2})?$", text)
    if match:
        frac = (match["frac"] or "")[:6].ljust(6, "0") if match["frac"] else None
        text = match["base"] + (f".{frac}" if frac else "") + (match["tz"] or "")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        log.warning("Unparseable timestamp %r in an Azure Backup response.", value)
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    if parsed.year in _SENTINEL_YEARS and parsed.month == 1 and parsed.day == 1:
        return None
    return parsed


def parse_duration(value: Any) -> timedelta | None:
    """Parse a job duration in ISO-8601 (``PT9.87S``) or .NET TimeSpan (``00:20:23.08``, ``1.02:03:04``) form."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    m = _ISO_DURATION.match(text)
    if m and text not in ("P", "PT"):
        parts = {k: float(v) for k, v in m.groupdict().items() if v}
        return timedelta(**parts)
    m = _TIMESPAN.match(text)
    if m:
        return timedelta(
            days=int(m["days"] or 0), hours=int(m["hours"]), minutes=int(m["minutes"]), seconds=float(m["seconds"])
        )
    log.warning("Unparseable duration %r in an Azure Backup response.", value)
    return None


def format_duration_iso(value: timedelta | None) -> str | None:
    """Render a duration as ISO-8601 (``PT1H2M3.5S``)."""
    if value is None:
        return None
    micros = round(value.total_seconds() * 1_000_000)
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, micros = divmod(rest, 1_000_000)
    out = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if seconds or micros or out == "PT":
        out += (f"{seconds}.{micros:06d}".rstrip("0").rstrip(".") if micros else str(seconds)) + "S"
    return out


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------------------------------
# Typed response objects
# --------------------------------------------------------------------------------------------------------------------

_JOB_ACTIONS = {0: "Invalid", 1: "Cancellable", 2: "Retriable"}


@dataclass(frozen=True)
class JobErrorInfo:
    """One entry of ``Job.errorDetails`` (``errorCode`` is an integer, unlike ARM error codes)."""

    code: int | None
    message: str | None
    title: str | None
    recommendations: tuple[str, ...]

    def describe(self) -> str:
        text = f"error {self.code if self.code is not None else '?'}: {self.message or self.title or '(no message)'}"
        if self.recommendations:
            text += " Recommendations: " + " ".join(self.recommendations)
        return text


@dataclass(frozen=True)
class JobTask:
    """One entry of ``extendedInfo.tasksList`` (e.g. "Take Snapshot", "Transfer data to vault")."""

    task_id: str
    status: str | None
    start_time: datetime | None
    end_time: datetime | None
    duration: timedelta | None
    progress_percentage: float | None


@dataclass(frozen=True)
class BackupJob:
    """A Recovery Services backup job (``JobResource``), whatever its ``jobType``."""

    job_id: str
    resource_id: str | None
    status: str
    operation: str | None
    entity_friendly_name: str | None
    backup_management_type: str | None
    job_type: str | None
    start_time: datetime | None
    end_time: datetime | None
    duration: timedelta | None
    duration_text: str | None
    progress_percentage: float | None
    tasks: tuple[JobTask, ...]
    errors: tuple[JobErrorInfo, ...]
    property_bag: Mapping[str, str]
    dynamic_error_message: str | None
    container_name: str | None
    actions: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    storage_account_name: str | None = None

    @property
    def is_terminal(self) -> bool:
        return BackupJobStatus.is_terminal(self.status)

    @property
    def is_cancellable(self) -> bool:
        return "Cancellable" in self.actions

    @property
    def backup_size(self) -> str | None:
        """The "Backup Size" (VM) or "Data Transferred" (file share) figure of the property bag, if any."""
        for key, value in self.property_bag.items():
            if key.lower().startswith(("backup size", "data transferred")):
                return value
        return None

    def describe_progress(self) -> str:
        tasks = ", ".join(
            f"{t.task_id}: {t.status or '?'}" + (f" {t.progress_percentage:g}%" if t.progress_percentage else "")
            for t in self.tasks
        )
        progress = f" {self.progress_percentage:g}%" if self.progress_percentage is not None else ""
        return f"{self.status}{progress}" + (f" [{tasks}]" if tasks else "")

    def describe_errors(self) -> str:
        parts = [e.describe() for e in self.errors]
        if self.dynamic_error_message:
            parts.append(self.dynamic_error_message)
        return "; ".join(parts) or "no error details"

    def summary(self) -> dict[str, Any]:
        """A JSON-serialisable summary for XCom (verify / notify steps)."""
        return {
            "job_id": self.job_id,
            "status": self.status,
            "operation": self.operation,
            "entity_friendly_name": self.entity_friendly_name,
            "backup_management_type": self.backup_management_type,
            "job_type": self.job_type,
            "start_time": _iso(self.start_time),
            "end_time": _iso(self.end_time),
            "duration": format_duration_iso(self.duration),
            "duration_seconds": self.duration.total_seconds() if self.duration is not None else None,
            "backup_size": self.backup_size,
            "error_codes": [e.code for e in self.errors],
            "errors": [e.describe() for e in self.errors],
        }


def parse_job(body: Any) -> BackupJob:
    """Parse a ``JobResource`` body."""
    if not isinstance(body, Mapping) or not isinstance(body.get("properties"), Mapping):
        raise ValueError(f"not a job resource: {str(body)[:200]}")
    props = body["properties"]
    ext = _as_mapping(props.get("extendedInfo"))
    tasks = tuple(
        JobTask(
            task_id=str(t.get("taskId", "")),
            status=_str_or_none(t.get("status")),
            start_time=parse_datetime(t.get("startTime")),
            end_time=parse_datetime(t.get("endTime")),
            duration=parse_duration(t.get("duration")),
            progress_percentage=_float_or_none(t.get("progressPercentage")),
        )
        for t in ext.get("tasksList") or ()
        if isinstance(t, Mapping)
    )
    errors = tuple(
        JobErrorInfo(
            code=_int_or_none(e.get("errorCode")),
            message=_str_or_none(e.get("errorString")),
            title=_str_or_none(e.get("errorTitle")),
            recommendations=tuple(str(r) for r in e.get("recommendations") or ()),
        )
        for e in props.get("errorDetails") or ()
        if isinstance(e, Mapping)
    )
    actions = tuple(
        _JOB_ACTIONS.get(a, str(a)) if isinstance(a, int) else str(a) for a in props.get("actionsInfo") or ()
    )
    job_id = str(body.get("name") or str(body.get("id", "")).rsplit("/", 1)[-1])
    return BackupJob(
        job_id=job_id,
        resource_id=_str_or_none(body.get("id")),
        # A missing status is unknown (still running, with a warning), not the terminal "Invalid".
        status=canonical_status(props.get("status"), BackupJobStatus.ALL_STATUSES),
        operation=_str_or_none(props.get("operation")),
        entity_friendly_name=_str_or_none(props.get("entityFriendlyName")),
        backup_management_type=_str_or_none(props.get("backupManagementType")),
        job_type=_str_or_none(props.get("jobType")),
        start_time=parse_datetime(props.get("startTime")),
        end_time=parse_datetime(props.get("endTime")),
        duration=parse_duration(props.get("duration")),
        duration_text=_str_or_none(props.get("duration")),
        progress_percentage=_float_or_none(ext.get("progressPercentage")),
        tasks=tasks,
        errors=errors,
        property_bag={str(k): str(v) for k, v in (ext.get("propertyBag") or {}).items()},
        dynamic_error_message=_str_or_none(ext.get("dynamicErrorMessage")),
        container_name=_str_or_none(props.get("containerName")),
        actions=actions,
        raw=body,
        storage_account_name=_str_or_none(props.get("storageAccountName")),
    )


@dataclass(frozen=True)
class OperationStatus:
    """An ``OperationStatus`` body (``operationsStatus`` / ``backupOperations``)."""

    operation_id: str
    status: str
    job_id: str | None
    job_ids: tuple[str, ...]
    error_code: str | None
    error_message: str | None
    start_time: datetime | None
    end_time: datetime | None


def parse_operation_status(body: Any) -> OperationStatus:
    if not isinstance(body, Mapping) or "status" not in body:
        raise ValueError(f"not an operation status: {str(body)[:200]}")
    props = _as_mapping(body.get("properties"))
    error = _as_mapping(body.get("error"))
    job_ids = tuple(str(j) for j in props.get("jobIds") or ())
    return OperationStatus(
        operation_id=str(body.get("name") or body.get("id") or ""),
        status=canonical_status(body["status"], OperationStatusValue.ALL_STATUSES),
        job_id=_str_or_none(props.get("jobId")) or (job_ids[0] if job_ids else None),
        job_ids=job_ids,
        error_code=_str_or_none(error.get("code")),
        error_message=_str_or_none(error.get("message")),
        start_time=parse_datetime(body.get("startTime")),
        end_time=parse_datetime(body.get("endTime")),
    )


_CONTAINER_IN_ID = re.compile(r"protectionContainers/([^/]+)", re.IGNORECASE)
_ITEM_IN_ID = re.compile(r"protectedItems/([^/]+)", re.IGNORECASE)


@dataclass(frozen=True)
class ProtectedItem:
    """A ``ProtectedItemResource``; ``container_name`` / ``protected_item_name`` are taken from its ARM id."""

    resource_id: str
    name: str
    container_name: str | None
    protected_item_name: str
    friendly_name: str | None
    backup_management_type: str | None
    workload_type: str | None
    protected_item_type: str | None
    protection_state: str | None
    last_backup_status: str | None
    last_backup_time: datetime | None
    policy_name: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)


def parse_protected_item(body: Any) -> ProtectedItem:
    if not isinstance(body, Mapping) or not isinstance(body.get("properties"), Mapping):
        raise ValueError(f"not a protected item: {str(body)[:200]}")
    props = body["properties"]
    rid = str(body.get("id", ""))
    container = _CONTAINER_IN_ID.search(rid)
    item = _ITEM_IN_ID.search(rid)
    return ProtectedItem(
        resource_id=rid,
        name=str(body.get("name", "")),
        container_name=container.group(1) if container else None,
        protected_item_name=item.group(1) if item else str(body.get("name", "")),
        friendly_name=_str_or_none(props.get("friendlyName")),
        backup_management_type=_str_or_none(props.get("backupManagementType")),
        workload_type=_str_or_none(props.get("workloadType")),
        protected_item_type=_str_or_none(props.get("protectedItemType")),
        protection_state=_str_or_none(props.get("protectionState")),
        last_backup_status=_str_or_none(props.get("lastBackupStatus")),
        last_backup_time=parse_datetime(props.get("lastBackupTime")),
        policy_name=_str_or_none(props.get("policyName")),
        raw=body,
    )


@dataclass(frozen=True)
class RecoveryPoint:
    """A ``RecoveryPointResource``."""

    recovery_point_id: str
    resource_id: str | None
    object_type: str | None
    recovery_point_time: datetime | None
    recovery_point_type: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)


def parse_recovery_point(body: Any) -> RecoveryPoint:
    if not isinstance(body, Mapping) or not isinstance(body.get("properties"), Mapping):
        raise ValueError(f"not a recovery point: {str(body)[:200]}")
    props = body["properties"]
    return RecoveryPoint(
        recovery_point_id=str(body.get("name", "")),
        resource_id=_str_or_none(body.get("id")),
        object_type=_str_or_none(props.get("objectType")),
        # IaaS VM / file share use recoveryPointTime; workload points use recoveryPointTimeInUTC.
        recovery_point_time=parse_datetime(props.get("recoveryPointTime") or props.get("recoveryPointTimeInUTC")),
        recovery_point_type=_str_or_none(props.get("recoveryPointType") or props.get("type")),
        raw=body,
    )


@dataclass(frozen=True)
class Vault:
    """A Recovery Services vault (``Vaults_Get``)."""

    resource_id: str
    name: str
    location: str | None
    provisioning_state: str | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)


def parse_vault(body: Any) -> Vault:
    if not isinstance(body, Mapping) or "name" not in body:
        raise ValueError(f"not a vault: {str(body)[:200]}")
    props = _as_mapping(body.get("properties"))
    return Vault(
        resource_id=str(body.get("id", "")),
        name=str(body["name"]),
        location=_str_or_none(body.get("location")),
        provisioning_state=_str_or_none(props.get("provisioningState")),
        raw=body,
    )


T = TypeVar("T")


def parse_page(body: Any, parse_item: Callable[[Any], T]) -> tuple[list[T], str | None]:
    """Parse one page of a pageable list (``{"value": [...], "nextLink": ...}``)."""
    if not isinstance(body, Mapping) or not isinstance(body.get("value", []), list):
        raise ValueError(f"not a list page: {str(body)[:200]}")
    return [parse_item(v) for v in body.get("value") or ()], _str_or_none(body.get("nextLink"))
