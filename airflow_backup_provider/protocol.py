"""Sans-I/O core of the Azure Backup (Recovery Services) REST protocol.

Everything that knows the wire protocol lives here and only here: URL building, request bodies, response parsing
into typed objects, the job/operation status rules, the ARM error envelope, the retry policy and the multi-step
flows (trigger → follow the async operation → jobId, paging, cancel). Nothing in this module opens a socket,
sleeps or reads a clock on its own.

Flows are generators. They *yield* actions (:class:`Send` a request, :class:`Sleep`) and receive the outcome of a
``Send`` (an :class:`ApiResponse` or a :class:`TransportFailure`). The sync hook drives them with ``requests`` and
``time.sleep``; the async hook with ``aiohttp`` and ``asyncio.sleep``. Both drivers are a dozen lines; neither
re-implements any protocol rule.

Spec: ``tests/spec/bms.json`` (api-version 2026-10-01) and its x-ms-examples.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import math
import re
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

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

log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "2026-10-01"
# Recovery Services vaults live in a separate spec (azure-mgmt-recoveryservices); its current stable version.
VAULT_API_VERSION = "2026-11-01"
FABRIC_NAME = "Azure"
OPERATION_IN_PROGRESS_CODES = frozenset({"UserErrorBackupOperationInProgress", "SystemBackupOperationInProgress"})
# The service's date format in $filter clauses (CLI: strftime('%Y-%m-%d %I:%M:%S %p')).
FILTER_DATE_FORMAT = "%Y-%m-%d %I:%M:%S %p"
# 404 codes that alone prove a job's parent is gone (``ResourceNotFound`` does not: see explain_job_not_found).
PARENT_NOT_FOUND_CODES = frozenset({"ResourceGroupNotFound", "SubscriptionNotFound"})
# No wait loop polls faster than this, whatever it is configured with (quota of the subscription's reads).
MIN_POLL_INTERVAL = 0.1
# 200 resources per page (ResourceList) x 1000 pages: far beyond any vault; a guard against a nextLink loop.
MAX_PAGES = 1000


# --------------------------------------------------------------------------------------------------------------------
# Clouds and connection settings
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CloudEnvironment:
    """Endpoints of one Azure cloud (values from azure-cli's ``cloud.py``)."""

    name: str
    resource_manager: str
    authority_host: str
    portal: str


CLOUDS: dict[str, CloudEnvironment] = {
    "AzureCloud": CloudEnvironment(
        "AzureCloud", "https://management.azure.com", "https://login.microsoftonline.com", "https://portal.azure.com"
    ),
    "AzureUSGovernment": CloudEnvironment(
        "AzureUSGovernment",
        "https://management.usgovcloudapi.net",
        "https://login.microsoftonline.us",
        "https://portal.azure.us",
    ),
    "AzureChinaCloud": CloudEnvironment(
        "AzureChinaCloud",
        "https://management.chinacloudapi.cn",
        "https://login.chinacloudapi.cn",
        "https://portal.azure.cn",
    ),
}
# Spellings used by azure-identity / msrestazure for the same clouds.
_CLOUD_ALIASES = {
    "azurepubliccloud": "AzureCloud",
    "azuregovernment": "AzureUSGovernment",
    "azurechina": "AzureChinaCloud",
}
KNOWN_AUTHORITY_HOSTS = frozenset(urlsplit(c.authority_host).hostname for c in CLOUDS.values())


def resolve_cloud(name: str | None) -> CloudEnvironment:
    """Return the cloud for ``cloud_environment`` (default ``AzureCloud``); unknown names are a clear error."""
    if not name:
        return CLOUDS["AzureCloud"]
    for key, cloud in CLOUDS.items():
        if key.lower() == name.lower():
            return cloud
    alias = _CLOUD_ALIASES.get(name.lower())
    if alias:
        return CLOUDS[alias]
    raise AzureBackupConfigError("cloud_environment", name, f"unknown cloud; use one of {', '.join(CLOUDS)}")


def _normalize_base_url(fieldname: str, value: str) -> str:
    """A configured endpoint as ``https://host[:port][/path]``; anything a parser could read two ways is refused.

    The value is echoed in the error only when it carries no userinfo (which may hold a password).
    """
    text = value.strip()
    shown: Any = "<redacted: contains userinfo>" if "@" in text else text
    try:
        origin = parse_origin(text, allow_query=False)
    except ValueError as exc:
        raise AzureBackupConfigError(fieldname, shown, f"{exc} (TLS verification is never disabled)") from None
    path = urlsplit(text).path.rstrip("/")
    return f"{origin.url}{path}"


@dataclass(frozen=True)
class ConnectionSettings:
    """The non-secret part of an ``azure_backup`` connection, validated.

    The client secret is deliberately *not* a field, so that no ``repr`` of this object can leak it.
    """

    subscription_id: str
    tenant_id: str | None
    client_id: str | None
    uses_client_secret: bool
    resource_group_name: str | None
    vault_name: str | None
    cloud: CloudEnvironment
    resource_manager_endpoint: str
    authority_host: str
    managed_identity_client_id: str | None
    workload_identity_tenant_id: str | None

    @property
    def scope(self) -> str:
        """OAuth scope for ARM: the Resource Manager endpoint + ``/.default``."""
        return f"{self.resource_manager_endpoint}/.default"

    @property
    def authority_is_custom(self) -> bool:
        """True when the authority is not a public Entra ID host (emulator, sovereign override)."""
        return urlsplit(self.authority_host).hostname not in KNOWN_AUTHORITY_HOSTS

    @classmethod
    def from_connection(
        cls, *, conn_id: str, login: str | None, has_password: bool, extras: Mapping[str, Any]
    ) -> ConnectionSettings:
        """Validate connection fields. Errors name the connection and the field, never the secret."""

        def extra(name: str) -> str | None:
            # Accept the legacy ``extra__azure_backup__<name>`` form the Airflow 2 UI writes.
            value = extras.get(name, extras.get(f"extra__azure_backup__{name}"))
            if value is None or (isinstance(value, str) and not value.strip()):
                return None
            return str(value).strip()

        subscription_id = extra("subscription_id")
        if not subscription_id:
            raise AzureBackupConfigError(
                "subscription_id", None, f"connection {conn_id!r} needs the extra field 'subscription_id'"
            )
        tenant_id = extra("tenant_id")
        login = (login or "").strip() or None
        if has_password and not login:
            raise AzureBackupConfigError(
                "login", None, f"connection {conn_id!r} has a client secret but no client id (login)"
            )
        if has_password and not tenant_id:
            raise AzureBackupConfigError(
                "tenant_id", None, f"connection {conn_id!r} has a client secret, which needs the extra 'tenant_id'"
            )
        cloud = resolve_cloud(extra("cloud_environment"))
        arm = extra("resource_manager_endpoint")
        authority = extra("authority_host")
        return cls(
            subscription_id=subscription_id,
            tenant_id=tenant_id,
            client_id=login,
            uses_client_secret=has_password,
            resource_group_name=extra("resource_group_name"),
            vault_name=extra("vault_name"),
            cloud=cloud,
            resource_manager_endpoint=_normalize_base_url("resource_manager_endpoint", arm)
            if arm
            else cloud.resource_manager,
            authority_host=_normalize_base_url("authority_host", authority) if authority else cloud.authority_host,
            managed_identity_client_id=extra("managed_identity_client_id"),
            workload_identity_tenant_id=extra("workload_identity_tenant_id"),
        )


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


def format_filter_datetime(value: datetime) -> str:
    """Render a datetime in the service's ``$filter`` date format, in UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    # %p depends on the C locale; the service wants English AM/PM whatever the worker's locale is.
    return value.strftime("%Y-%m-%d %I:%M:%S ") + ("AM" if value.hour < 12 else "PM")


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


# --------------------------------------------------------------------------------------------------------------------
# Input validation and request bodies
# --------------------------------------------------------------------------------------------------------------------


def require_name(fieldname: str, value: Any) -> str:
    """Validate a name used as a URL path segment (vault, container, item, job id...)."""
    if not isinstance(value, str) or not value.strip():
        raise AzureBackupConfigError(fieldname, value, "must be a non-empty string")
    if "/" in value or value.strip() != value or any(ord(c) < 32 for c in value):
        raise AzureBackupConfigError(fieldname, value, "must not contain '/', control characters or edge spaces")
    if value in (".", ".."):
        # HTTP clients resolve dot segments: ".." would address the parent resource.
        raise AzureBackupConfigError(fieldname, value, "must not be a '.' or '..' path segment")
    return value


def odata_value(fieldname: str, value: Any) -> str:
    """Validate a value placed inside ``'...'`` in a ``$filter`` (a quote would end the literal early)."""
    text = require_name(fieldname, value)
    if "'" in text:
        raise AzureBackupConfigError(fieldname, value, "must not contain a single quote")
    return text


def coerce_datetime(fieldname: str, value: Any) -> datetime:
    """Accept a datetime or an ISO-8601 string; naive values are UTC."""
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise AzureBackupConfigError(fieldname, value, "is not an ISO-8601 date-time") from None
    else:
        raise AzureBackupConfigError(fieldname, value, "must be a datetime or an ISO-8601 string")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def format_expiry(value: datetime) -> str:
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def infer_backup_request_type(container_name: str) -> str:
    """Pick the request ``objectType`` from the container name's type prefix."""
    prefix = container_name.split(";", 1)[0].lower()
    if prefix == "storagecontainer":
        return "AzureFileShareBackupRequest"
    if prefix == "vmappcontainer":
        return "AzureWorkloadBackupRequest"
    return "IaasVMBackupRequest"


def build_backup_request(
    *,
    container_name: str,
    backup_request: Mapping[str, Any] | None = None,
    backup_type: str | None = None,
    enable_compression: bool | None = None,
    retain_until: datetime | str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Build the ``BackupRequestResource`` body ``{"properties": {...}}``.

    ``backup_request`` (the ``properties``) wins; otherwise the type is inferred from the container
    (``IaasVMContainer`` → VM, ``StorageContainer`` → file share, ``VMAppContainer`` → workload). ``backup_type`` /
    ``enable_compression`` apply to workload requests only. Workload defaults follow
    ``az backup protection backup-now``.
    """
    now = now or datetime.now(timezone.utc)
    if backup_request is not None:
        if not isinstance(backup_request, Mapping):
            raise AzureBackupConfigError("backup_request", backup_request, "must be a mapping (the request properties)")
        props = dict(backup_request.get("properties", backup_request))
        object_type = props.get("objectType")
        if object_type not in BACKUP_REQUEST_TYPES:
            raise AzureBackupConfigError(
                "backup_request.objectType", object_type, f"must be one of {sorted(BACKUP_REQUEST_TYPES)}"
            )
    else:
        props = {"objectType": infer_backup_request_type(container_name)}
    object_type = props["objectType"]
    is_workload = object_type == "AzureWorkloadBackupRequest"

    if backup_type is not None:
        if backup_type not in BACKUP_TYPES:
            raise AzureBackupConfigError("backup_type", backup_type, f"must be one of {sorted(BACKUP_TYPES)}")
        props["backupType"] = backup_type
    if enable_compression is not None:
        if not isinstance(enable_compression, bool):
            raise AzureBackupConfigError("enable_compression", enable_compression, "must be true or false")
        props["enableCompression"] = enable_compression
    for key, name in (("backupType", "backup_type"), ("enableCompression", "enable_compression")):
        if not is_workload and key in props:
            raise AzureBackupConfigError(
                name,
                props[key],
                f"applies only to workload (SQL/SAP) items; container {container_name!r} takes a {object_type}",
            )
    if is_workload:
        props.setdefault("backupType", "Full")
        if props["backupType"] not in BACKUP_TYPES:
            raise AzureBackupConfigError("backup_type", props["backupType"], f"must be one of {sorted(BACKUP_TYPES)}")

    if retain_until is not None:
        expiry = coerce_datetime("retain_until", retain_until)
        if expiry <= now:
            raise AzureBackupConfigError("retain_until", retain_until, "must be in the future")
        props["recoveryPointExpiryTimeInUTC"] = format_expiry(expiry)
    if is_workload:
        if props["backupType"] in ("Differential", "Log", "Incremental"):
            # The policy decides their retention; the service ignores an expiry (az CLI drops it too).
            props.pop("recoveryPointExpiryTimeInUTC", None)
        elif "recoveryPointExpiryTimeInUTC" not in props:
            days = 45 if props["backupType"] == "Full" else 30
            props["recoveryPointExpiryTimeInUTC"] = format_expiry(now + timedelta(days=days))
    return {"properties": props}


def build_job_filter(
    *,
    status: str | None = None,
    operation: str | None = None,
    backup_management_type: str | None = None,
    start_time: datetime | str | None = None,
    end_time: datetime | str | None = None,
    job_id: str | None = None,
) -> str | None:
    """Build the ``$filter`` of ``BackupJobs_List``. With one end of the time window only, the other is ±30 days."""
    clauses: list[tuple[str, str]] = []
    for name, value, allowed in (
        ("status", status, BackupJobStatus.ALL_STATUSES),
        ("operation", operation, JOB_OPERATIONS),
        ("backupManagementType", backup_management_type, BACKUP_MANAGEMENT_TYPES),
    ):
        if value is not None:
            if value not in allowed:
                raise AzureBackupConfigError(name, value, f"must be one of {sorted(allowed)}")
            clauses.append((name, value))
    if job_id is not None:
        clauses.append(("jobId", odata_value("job_id", job_id)))
    start = coerce_datetime("start_time", start_time) if start_time is not None else None
    end = coerce_datetime("end_time", end_time) if end_time is not None else None
    if start and not end:
        end = start + timedelta(days=30)
    if end and not start:
        start = end - timedelta(days=30)
    if start and end:
        if start > end:
            raise AzureBackupConfigError("start_time", start_time, f"is after end_time {end_time!r}")
        clauses += [("startTime", format_filter_datetime(start)), ("endTime", format_filter_datetime(end))]
    return " and ".join(f"{k} eq '{v}'" for k, v in clauses) or None


# --------------------------------------------------------------------------------------------------------------------
# URL building
# --------------------------------------------------------------------------------------------------------------------


def _segment(value: str) -> str:
    return quote(value, safe="")


@dataclass(frozen=True)
class Origin:
    """Scheme, host and effective port of a URL, canonical: lower-case host, no trailing dot, port filled in."""

    host: str
    port: int
    scheme: str = "https"

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host + ("" if self.port == 443 else f":{self.port}")

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.netloc}"


# A plain absolute https URL: no userinfo, no backslash, no fragment. Characters are checked before this runs.
_PLAIN_URL = re.compile(
    r"^https://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>[0-9]{1,5}))?(?P<rest>[/?][^#]*)?$"
)
_DOTTED_NUMBERS = re.compile(r"^[0-9.]+$")
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")


def parse_origin(url: str, *, allow_query: bool = True) -> Origin:
    """The origin a URL names, or :class:`ValueError` for anything but a plain ``https://host[:port]/path?query``.

    Refused, because HTTP libraries disagree on them (a check with one parser and a connection with another sends
    the token elsewhere): userinfo (``@``), backslashes, whitespace and control characters, fragments, empty or
    malformed hosts, IPv4 addresses that are not four canonical decimal octets (``127.1``, ``0x7f.0.0.1``,
    ``2130706433``, ``127.000.0.1``), relative and scheme-relative URLs, any scheme but https.
    """
    if not isinstance(url, str) or not url:
        raise ValueError("is empty")
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F or ch == "\\" for ch in url):
        raise ValueError("contains whitespace, a control character or a backslash")
    if not url.lower().startswith("https://"):
        raise ValueError("must be an https:// URL (absolute)")
    match = _PLAIN_URL.match(url)
    if match is None:
        raise ValueError("must be a plain https://host[:port]/path URL (no userinfo, fragment or odd host)")
    if not allow_query and "?" in (match.group("rest") or ""):
        raise ValueError("must not carry a query string")
    host = match.group("host").lower()
    if host.startswith("["):
        try:
            host = str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise ValueError("has a malformed IPv6 host") from None
    else:
        host = host.removesuffix(".")
        labels = host.split(".")
        if not host or any(not label for label in labels):
            raise ValueError("has an empty host or an empty host label")
        if _DOTTED_NUMBERS.match(host) or _NUMERIC_LABEL.match(labels[-1]):
            try:
                address = ipaddress.IPv4Address(host)
            except ValueError:
                raise ValueError("has a numeric host that is not a canonical IPv4 address") from None
            if str(address) != host:
                raise ValueError("has a numeric host that is not a canonical IPv4 address")
    port_text = match.group("port")
    port = int(port_text) if port_text else 443
    if not 0 < port < 65536:
        raise ValueError("has a port outside 1-65535")
    return Origin(host=host, port=port)


def origin_from_parts(scheme: str | None, userinfo: str | None, host: str | None, port: int | None) -> Origin | None:
    """Canonical origin from the parts an HTTP library parsed (None when there is userinfo, no host or no https)."""
    if (scheme or "").lower() != "https" or userinfo or not host:
        return None
    host = host.lower().strip("[]").removesuffix(".")
    if ":" in host:  # IPv6: one spelling per address
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
    return Origin(host=host, port=port or 443)


def same_host(url: str, base_url: str) -> bool:
    """True when ``url`` is a plain https URL on the scheme, host and port of ``base_url`` (else never)."""
    try:
        return parse_origin(url) == parse_origin(base_url)
    except ValueError:
        return False


def describe_host(url: str) -> str:
    """The authority of a refused URL for an error message, without any userinfo (it may hold a password)."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        netloc = ""
    netloc = netloc.rsplit("@", 1)[-1] if netloc else url[:60]
    return "".join(ch if ch.isprintable() else "?" for ch in netloc)


@dataclass(frozen=True)
class VaultRef:
    """Identifies a vault: subscription, resource group, name."""

    subscription_id: str
    resource_group_name: str
    vault_name: str

    @property
    def path(self) -> str:
        return (
            f"/subscriptions/{_segment(self.subscription_id)}/resourceGroups/{_segment(self.resource_group_name)}"
            f"/providers/Microsoft.RecoveryServices/vaults/{_segment(self.vault_name)}"
        )


@dataclass(frozen=True)
class ItemRef:
    """Identifies a protected item inside a vault (names as returned by the list APIs, ``;``-separated)."""

    vault: VaultRef
    container_name: str
    protected_item_name: str

    @property
    def path(self) -> str:
        return (
            f"{self.vault.path}/backupFabrics/{FABRIC_NAME}/protectionContainers/{_segment(self.container_name)}"
            f"/protectedItems/{_segment(self.protected_item_name)}"
        )


@dataclass(frozen=True)
class BackupApi:
    """Builds every request the hooks send. Bound to one ARM base URL and api-version."""

    base_url: str
    api_version: str = DEFAULT_API_VERSION
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    @property
    def origin(self) -> Origin:
        """The only origin the bearer token is ever sent to."""
        return parse_origin(self.base_url)

    def url(self, path: str, query: Mapping[str, str] | None = None, *, api_version: str | None = None) -> str:
        params = {"api-version": api_version or self.api_version, **(query or {})}
        return f"{self.base_url}{path}?{urlencode(params, quote_via=quote, safe='')}"

    def follow_url(self, url: str, source: str, *, replace_api_version: bool = False) -> str:
        """Validate a server-provided URL: it must be on the ARM host, since the bearer token goes with it."""
        if not same_host(url, self.base_url):
            raise AzureBackupForeignHostError(source=source, url_host=describe_host(url), arm_host=self.origin.netloc)
        if not replace_api_version:
            return url  # the api-version in a returned header URL is opaque; follow it as given
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "api-version"]
        query.insert(0, ("api-version", self.api_version))
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query, quote_via=quote, safe=""), ""))

    # -- requests -------------------------------------------------------------------------------------------------
    def get_vault(self, vault: VaultRef) -> ApiRequest:
        return ApiRequest("GET", self.url(vault.path, api_version=VAULT_API_VERSION), frozenset({200}))

    def trigger_backup(self, item: ItemRef, body: Mapping[str, Any]) -> ApiRequest:
        return ApiRequest("POST", self.url(f"{item.path}/backup"), frozenset({202}), body)

    def get_item_operation_status(self, item: ItemRef, operation_id: str) -> ApiRequest:
        return ApiRequest("GET", self.url(f"{item.path}/operationsStatus/{_segment(operation_id)}"), frozenset({200}))

    def get_job(self, vault: VaultRef, job_id: str) -> ApiRequest:
        return ApiRequest("GET", self.url(f"{vault.path}/backupJobs/{_segment(job_id)}"), frozenset({200}))

    def list_jobs(self, vault: VaultRef, odata_filter: str | None) -> ApiRequest:
        query = {"$filter": odata_filter} if odata_filter else None
        return ApiRequest("GET", self.url(f"{vault.path}/backupJobs", query), frozenset({200}))

    def cancel_job(self, vault: VaultRef, job_id: str) -> ApiRequest:
        return ApiRequest("POST", self.url(f"{vault.path}/backupJobs/{_segment(job_id)}/cancel"), frozenset({202}))

    def get_protected_item(self, item: ItemRef) -> ApiRequest:
        return ApiRequest("GET", self.url(item.path), frozenset({200}))

    def list_protected_items(self, vault: VaultRef, odata_filter: str | None) -> ApiRequest:
        query = {"$filter": odata_filter} if odata_filter else None
        return ApiRequest("GET", self.url(f"{vault.path}/backupProtectedItems", query), frozenset({200}))

    def list_recovery_points(self, item: ItemRef, odata_filter: str | None) -> ApiRequest:
        query = {"$filter": odata_filter} if odata_filter else None
        return ApiRequest("GET", self.url(f"{item.path}/recoveryPoints", query), frozenset({200}))

    def trigger_restore(self, item: ItemRef, recovery_point_id: str, body: Mapping[str, Any]) -> ApiRequest:
        path = f"{item.path}/recoveryPoints/{_segment(recovery_point_id)}/restore"
        return ApiRequest("POST", self.url(path), frozenset({202}), body)

    def follow(
        self, url: str, source: str, expected: Iterable[int], *, replace_api_version: bool = False
    ) -> ApiRequest:
        return ApiRequest(
            "GET", self.follow_url(url, source, replace_api_version=replace_api_version), frozenset(expected)
        )


# --------------------------------------------------------------------------------------------------------------------
# Flows (generators; see the module docstring)
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperationHandle:
    """What a 202 says about the asynchronous operation it started."""

    operation_id: str
    status_url: str | None  # Azure-AsyncOperation: .../operationsStatus/{id} → OperationStatus
    result_url: str | None  # Location: .../operationResults/{id} → 202 while running, then 200/204
    retry_after: float | None


def parse_operation_handle(response: ApiResponse) -> OperationHandle:
    status_url = response.header("azure-asyncoperation")
    result_url = response.header("location")
    url = status_url or result_url
    if not url:
        raise AzureBackupApiError(
            http_status=response.status,
            error_code=None,
            message="202 without Azure-AsyncOperation or Location header",
            request_id=response.request_id,
            method="POST",
            url="",
        )
    return OperationHandle(
        operation_id=urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1],
        status_url=status_url,
        result_url=result_url,
        retry_after=parse_retry_after(response),
    )


@dataclass(frozen=True)
class WaitSettings:
    """How long and how often to poll an asynchronous operation (``Retry-After`` wins when present)."""

    poll_interval: float = 5.0
    timeout: float = 600.0
    clock: Callable[[], float] = time.time


def _poll_delay(
    response: ApiResponse | None, handle_retry_after: float | None, wait: WaitSettings, policy: RetryPolicy
) -> float:
    retry_after = parse_retry_after(response) if response is not None else None
    if retry_after is None:
        retry_after = handle_retry_after
    if retry_after is None:
        return wait.poll_interval
    # Never poll faster than 1 s (or the configured interval, if shorter) even when told "Retry-After: 0".
    return max(min(retry_after, policy.max_retry_after), min(wait.poll_interval, 1.0))


def wait_for_location(
    api: BackupApi, url: str, handle: OperationHandle, wait: WaitSettings, deadline: float | None = None
) -> Flow[ApiResponse]:
    """Poll a ``Location`` (operationResults) URL until it stops answering 202."""
    deadline = wait.clock() + wait.timeout if deadline is None else deadline
    request = api.follow(url, "Location", (200, 202, 204))
    delay = _poll_delay(None, handle.retry_after, wait, api.policy)
    while True:
        yield Sleep(delay)
        response = yield from call(request, api.policy)
        if response.status != 202:
            return response
        if wait.clock() >= deadline:
            raise AzureBackupTimeoutError(f"operation {handle.operation_id} still running after {wait.timeout:g} s")
        delay = _poll_delay(response, None, wait, api.policy)


def follow_operation(
    api: BackupApi, handle: OperationHandle, item: ItemRef | None, wait: WaitSettings
) -> Flow[OperationStatus]:
    """Follow a backup/restore operation to its final ``OperationStatus`` (which carries the jobId).

    With ``Azure-AsyncOperation`` the status URL is polled directly. With only ``Location``, the result URL is polled
    until done and then the item's ``operationsStatus/{operationId}`` is read for the jobId.
    """
    deadline = wait.clock() + wait.timeout
    if handle.status_url:
        request = api.follow(handle.status_url, "Azure-AsyncOperation", (200,))
    else:
        if item is None or handle.result_url is None:
            raise AzureBackupApiError(
                http_status=202,
                error_code=None,
                message="operation has no status URL and no item to read its status from",
                request_id=None,
                method="GET",
                url="",
            )
        yield from wait_for_location(api, handle.result_url, handle, wait, deadline)
        request = api.get_item_operation_status(item, handle.operation_id)
    # After a finished Location poll the status is ready: read it at once.
    delay = _poll_delay(None, handle.retry_after, wait, api.policy) if handle.status_url else 0.0
    while True:
        if delay:
            yield Sleep(delay)
        response = yield from call(request, api.policy)
        status = _parse_body(request, response, parse_operation_status)
        if status.status == OperationStatusValue.SUCCEEDED:
            return status
        if status.status in OperationStatusValue.FAILURE_STATUSES:
            raise AzureBackupOperationError(
                operation_id=handle.operation_id,
                status=status.status,
                error_code=status.error_code,
                message=status.error_message,
                job_id=status.job_id,
            )
        if wait.clock() >= deadline:
            raise AzureBackupTimeoutError(
                f"operation {handle.operation_id} still {status.status} after {wait.timeout:g} s"
            )
        delay = _poll_delay(response, None, wait, api.policy)


@dataclass(frozen=True)
class TriggeredOperation:
    """The result of a trigger: the operation handle and, once followed, the job id."""

    operation_id: str
    job_id: str


def trigger_and_follow(
    api: BackupApi,
    request: ApiRequest,
    item: ItemRef,
    wait: WaitSettings,
    on_accepted: Callable[[OperationHandle], None] | None = None,
) -> Flow[TriggeredOperation]:
    """POST a backup/restore trigger, then follow its operation to the jobId.

    Once Azure has answered 202 the backup may be running, so every later failure to learn its job id is raised as
    :class:`AzureBackupAcceptedError` (callers look for the job instead of triggering again); only the service's own
    final word on the operation (Failed / Canceled / Invalid) stays an :class:`AzureBackupOperationError`.
    """
    response = yield from call(request, api.policy)
    try:
        handle = parse_operation_handle(response)
    except AzureBackupError as exc:
        raise AzureBackupAcceptedError(operation_id="", cause=exc) from exc
    log.info("Azure accepted the request; operation %s (x-ms-request-id=%s).", handle.operation_id, response.request_id)
    if on_accepted is not None:
        on_accepted(handle)  # e.g. record the operation id durably before the long wait for the job id
    try:
        status = yield from follow_operation(api, handle, item, wait)
    except AzureBackupOperationError:
        raise  # the service's own final answer
    except AzureBackupError as exc:
        # The backup may be running even though we could not learn its job id: never report a plain failure.
        raise AzureBackupAcceptedError(operation_id=handle.operation_id, cause=exc) from exc
    if not status.job_id:
        no_job = AzureBackupOperationError(
            operation_id=handle.operation_id,
            status=status.status,
            error_code=None,
            message="the operation succeeded but returned no jobId",
        )
        raise AzureBackupAcceptedError(operation_id=handle.operation_id, cause=no_job) from no_job
    return TriggeredOperation(operation_id=handle.operation_id, job_id=status.job_id)


def get_job(api: BackupApi, vault: VaultRef, job_id: str) -> Flow[BackupJob]:
    return (yield from call_parsed(api.get_job(vault, require_name("job_id", job_id)), api.policy, parse_job))


def list_pages(api: BackupApi, first: ApiRequest, parse_item: Callable[[Any], T], limit: int | None) -> Flow[list[T]]:
    """Read a pageable list, following ``nextLink`` (ARM host only) until the end or ``limit`` items."""
    items: list[T] = []
    request = first
    for _ in range(MAX_PAGES):
        page, next_link = yield from call_parsed(request, api.policy, lambda body: parse_page(body, parse_item))
        items.extend(page)
        if not next_link or (limit is not None and len(items) >= limit):
            return items[:limit] if limit is not None else items
        request = api.follow(next_link, "nextLink", (200,), replace_api_version=True)
    raise AzureBackupApiError(
        http_status=200,
        error_code=None,
        message=f"more than {MAX_PAGES} pages; refusing to follow nextLink further",
        request_id=None,
        method="GET",
        url=redact_url(first.url),
    )


def cancel_job(api: BackupApi, vault: VaultRef, job_id: str, wait: WaitSettings, *, follow: bool = True) -> Flow[None]:
    """Request cancellation of a job; with ``follow``, also wait until the cancel operation is done."""
    response = yield from call(api.cancel_job(vault, require_name("job_id", job_id)), api.policy)
    handle = parse_operation_handle(response)
    log.info("Cancellation of job %s accepted (operation %s).", job_id, handle.operation_id)
    if not follow:
        return
    if handle.result_url:
        yield from wait_for_location(api, handle.result_url, handle, wait)
    elif handle.status_url:
        yield from follow_operation(api, handle, None, wait)


def find_item_backup_jobs(
    api: BackupApi,
    vault: VaultRef,
    item: ProtectedItem,
    *,
    start: datetime,
    end: datetime,
    status: str | None = None,
    operation: str = "Backup",
) -> Flow[list[BackupJob]]:
    """Jobs of ``operation`` (Backup, Restore) of ``item`` that started between ``start`` and ``end``, newest first."""
    odata = build_job_filter(
        status=status,
        operation=operation,
        backup_management_type=item.backup_management_type
        if item.backup_management_type in BACKUP_MANAGEMENT_TYPES
        else None,
        start_time=start,
        end_time=end,
    )
    jobs = yield from list_pages(api, api.list_jobs(vault, odata), parse_job, None)
    matches = [job for job in jobs if job_matches_item(job, item)]
    matches.sort(key=lambda j: j.start_time or datetime.min.replace(tzinfo=timezone.utc), reverse=True)
    return matches


def find_in_progress_backup(
    api: BackupApi, vault: VaultRef, item: ProtectedItem, now: datetime
) -> Flow[BackupJob | None]:
    """Find *the* running backup job of ``item`` (to attach to instead of starting a second backup).

    Two running candidates mean the match is ambiguous (jobs name their item only loosely): then None.
    """
    jobs = yield from find_item_backup_jobs(
        api,
        vault,
        item,
        start=now - timedelta(days=7),
        end=now + timedelta(minutes=5),
        status=BackupJobStatus.IN_PROGRESS,
    )
    if len(jobs) > 1:
        log.warning(
            "%d running backup jobs match %s (%s); not attaching to any of them.",
            len(jobs),
            item.protected_item_name,
            ", ".join(j.job_id for j in jobs),
        )
        return None
    return jobs[0] if jobs else None


def job_matches_item(job: BackupJob, item: ProtectedItem) -> bool:
    """Jobs name their item only loosely: friendly name, management type, and container or storage account."""
    if not job.entity_friendly_name or not item.friendly_name:
        return False
    if job.entity_friendly_name.lower() != item.friendly_name.lower():
        return False
    if (
        job.backup_management_type
        and item.backup_management_type
        and job.backup_management_type.lower() != item.backup_management_type.lower()
    ):
        return False
    container = (item.container_name or "").lower()
    if job.container_name and container:
        a = job.container_name.lower()
        return a.endswith(container) or container.endswith(a)
    if job.storage_account_name and container:
        # File share containers are StorageContainer;Storage;{rg};{account}.
        return container.rsplit(";", 1)[-1] == job.storage_account_name.lower()
    return True


def jobs_started_by_request(jobs: Iterable[BackupJob], posted_at: datetime, skew: timedelta) -> list[BackupJob]:
    """Of an item's backup jobs, those a POST sent at ``posted_at`` may have created.

    A job that ended before the POST is not it. Jobs started after the POST win; only without one do jobs that
    started up to ``skew`` earlier count (the service's clock is not ours).
    """
    candidates = [j for j in jobs if not (j.end_time and j.end_time < posted_at)]
    after = [j for j in candidates if j.start_time and j.start_time >= posted_at]
    if after:
        return after
    return [j for j in candidates if j.start_time is None or j.start_time >= posted_at - skew]


def find_jobs_of_request(
    api: BackupApi,
    item: ItemRef,
    posted_at: datetime,
    *,
    operation: str = "Backup",
    skew: timedelta,
    visible_within: float,
    poll_interval: float,
    now: Callable[[], datetime],
) -> Flow[list[BackupJob]]:
    """The jobs a POST sent at ``posted_at`` may have started, finished ones included (see jobs_started_by_request).

    A job shows in the listing a little after its POST; until ``visible_within`` seconds after ``posted_at`` an empty
    search is repeated, after that it proves there is no such job. A failing lookup raises: only a search that
    succeeded can prove a POST started nothing.
    """
    found = yield from call_parsed(api.get_protected_item(item), api.policy, parse_protected_item)
    while True:
        jobs = yield from find_item_backup_jobs(
            api, item.vault, found, start=posted_at - skew, end=now() + timedelta(minutes=5), operation=operation
        )
        candidates = jobs_started_by_request(jobs, posted_at, skew)
        remaining = (posted_at + timedelta(seconds=visible_within) - now()).total_seconds()
        if candidates or remaining <= 0:
            return candidates
        log.info("No %s job of %s since %s yet; looking again.", operation, item.protected_item_name, posted_at)
        yield Sleep(min(max(poll_interval, MIN_POLL_INTERVAL), remaining))


def status_is_success(status: str, *, fail_on_warnings: bool = False) -> bool:
    """Completed, or CompletedWithWarnings unless warnings fail."""
    if fail_on_warnings:
        return status == BackupJobStatus.COMPLETED
    return status in BackupJobStatus.SUCCESS_STATUSES


def explain_job_not_found(api: BackupApi, vault: VaultRef, job_id: str, error: AzureBackupNotFoundError) -> Flow[None]:
    """Decide what a 404 on a job GET means: return when the job is just not visible yet, raise when waiting is futile.

    ARM answers ``ResourceNotFound`` both for a missing vault and (undocumented) for a job it does not show yet, so
    the code alone proves only a missing resource group or subscription. Otherwise one GET of the vault decides:
    it exists → the job is not visible yet; it is missing → fail at once, naming the vault.
    """
    if error.error_code in PARENT_NOT_FOUND_CODES:
        raise error
    try:
        yield from call(api.get_vault(vault), api.policy)
    except AzureBackupNotFoundError as missing:
        raise AzureBackupNotFoundError(
            http_status=missing.http_status,
            error_code=missing.error_code,
            message=(
                f"vault {vault.vault_name!r} in resource group {vault.resource_group_name!r} (subscription "
                f"{vault.subscription_id}) does not exist, so job {job_id} never will: {missing.error_message}"
            ),
            request_id=missing.request_id,
            method=missing.method,
            url=missing.url,
        ) from error


@dataclass(frozen=True)
class JobWaitResult:
    """How a wait for a job ended: the last job seen and whether it is terminal (else the deadline passed)."""

    job: BackupJob | None
    timed_out: bool


def wait_for_job(
    api: BackupApi,
    vault: VaultRef,
    job_id: str,
    *,
    poll_interval: float,
    deadline: float,
    not_found_grace: float = 600.0,
    clock: Callable[[], float] = time.time,
) -> Flow[JobWaitResult]:
    """Poll a job until it is terminal or the (wall-clock) deadline passes.

    A job that answers 404 right after its trigger is polled again for ``not_found_grace`` seconds when its vault
    exists (:func:`explain_job_not_found`); a missing vault, resource group or subscription fails at once. Throttling
    that outlasts the per-request retries is waited out (``Retry-After``, bounded by the deadline), never a failure.
    """
    first_poll = clock()
    job: BackupJob | None = None
    while True:
        delay = poll_interval
        try:
            job = yield from get_job(api, vault, job_id)
        except AzureBackupNotFoundError as exc:
            if clock() - first_poll > not_found_grace:
                raise
            yield from explain_job_not_found(api, vault, job_id, exc)
            log.warning("Job %s not found yet (its vault exists); polling again.", job_id)
        except AzureBackupThrottledError as exc:
            delay = max(poll_interval, exc.retry_after or 0.0)
            log.warning("Reading job %s is throttled; waiting %.0f s as the service asked.", job_id, delay)
        else:
            log.info("Job %s (%s): %s", job_id, job.entity_friendly_name, job.describe_progress())
            if job.is_terminal:
                return JobWaitResult(job, timed_out=False)
        remaining = deadline - clock()
        if remaining <= 0:
            return JobWaitResult(job, timed_out=True)
        yield Sleep(min(max(delay, MIN_POLL_INTERVAL), remaining))


# --------------------------------------------------------------------------------------------------------------------
# Job verdicts and trigger events (shared by the sensor, the trigger and the operator)
# --------------------------------------------------------------------------------------------------------------------

EventStatus = Literal["success", "warning", "failed", "timeout", "error"]
EVENT_STATUSES: frozenset[str] = frozenset({"success", "warning", "failed", "timeout", "error"})


def job_event_status(job: BackupJob) -> EventStatus | None:
    """Map a job to the event it ends a wait with, or None while it is still running."""
    if not job.is_terminal:
        return None
    if job.status == BackupJobStatus.COMPLETED:
        return "success"
    if job.status == BackupJobStatus.COMPLETED_WITH_WARNINGS:
        return "warning"
    return "failed"


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


def portal_job_url(cloud: CloudEnvironment, tenant_id: str | None, vault: VaultRef, job_id: str) -> str:
    """Portal deep link to a job, using the generic ``#@{tenant}/resource{armId}`` pattern (no documented format)."""
    tenant = f"@{tenant_id}" if tenant_id else ""
    return f"{cloud.portal}/#{tenant}/resource{vault.path}/backupJobs/{_segment(job_id)}/overview"


def check_job_outcome(job: BackupJob, *, fail_on_warnings: bool = False, item: str | None = None) -> dict[str, Any]:
    """Judge a terminal job: return its summary, or raise for Failed/Cancelled/Invalid (and warnings if asked)."""
    status = job_event_status(job)
    if status is None:
        raise ValueError(f"job {job.job_id} is still {job.status}")
    if status == "failed" or (status == "warning" and fail_on_warnings):
        raise AzureBackupJobFailedError(
            describe_job_failure(job, item),
            job_id=job.job_id,
            status=job.status,
            error_codes=tuple(e.code for e in job.errors),
        )
    if status == "warning":
        log.warning("Azure Backup job %s completed with warnings: %s", job.job_id, job.describe_errors())
    return job.summary()


def resolve_job_event(event: Any, *, job_id: str | None, fail_on_warnings: bool = False) -> dict[str, Any]:
    """Turn a validated trigger event into the job summary, or raise what the event reports."""
    checked = validate_job_event(event, job_id)
    status = checked["status"]
    if status == "success" or (status == "warning" and not fail_on_warnings):
        if status == "warning":
            log.warning("Azure Backup job %s completed with warnings: %s", checked["job_id"], checked["message"])
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
