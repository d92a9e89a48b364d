"""Every request the provider sends: name validation, ARM URLs, request bodies and every ``$filter``.

Rule: no request is built anywhere else. Each value placed in a URL path is checked by :func:`require_name` and
percent-encoded; each value placed inside a ``$filter`` literal by :func:`odata_value`; bodies are validated here
and wrapped in ``properties`` here. :class:`BackupApi` turns (vault, item, job) references into :class:`ApiRequest`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from airflow_backup_provider.core.errors import (
    AzureBackupConfigError,
    AzureBackupForeignHostError,
)
from airflow_backup_provider.core.models import (
    BACKUP_MANAGEMENT_TYPES,
    BACKUP_REQUEST_TYPES,
    BACKUP_TYPES,
    JOB_OPERATIONS,
    BackupJobStatus,
)
from airflow_backup_provider.core.origins import (
    Origin,
    describe_host,
    parse_origin,
    same_host,
)
from airflow_backup_provider.core.wire import (
    ApiRequest,
    RetryPolicy,
)

log = logging.getLogger(__name__)

DEFAULT_API_VERSION = "2026-10-01"
# Recovery Services vaults live in a separate spec (azure-mgmt-recoveryservices); its current stable version.
VAULT_API_VERSION = "2026-11-01"
FABRIC_NAME = "Azure"
# The service's date format in $filter clauses (CLI: strftime('%Y-%m-%d %I:%M:%S %p')).
FILTER_DATE_FORMAT = "%Y-%m-%d %I:%M:%S %p"


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


def format_filter_datetime(value: datetime) -> str:
    """Render a datetime in the service's ``$filter`` date format, in UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    # %p depends on the C locale; the service wants English AM/PM whatever the worker's locale is.
    return value.strftime(FILTER_DATE_FORMAT.removesuffix(" %p")) + (" AM" if value.hour < 12 else " PM")


def build_protected_items_filter(
    *, backup_management_type: str | None = None, item_type: str | None = None
) -> str | None:
    """Build the ``$filter`` of ``BackupProtectedItems_List`` (by backup management type and item type)."""
    clauses = []
    if backup_management_type:
        clauses.append(f"backupManagementType eq '{odata_value('backup_management_type', backup_management_type)}'")
    if item_type:
        clauses.append(f"itemType eq '{odata_value('item_type', item_type)}'")
    return " and ".join(clauses) or None


def build_recovery_point_filter(
    *,
    start_time: datetime | str | None = None,
    end_time: datetime | str | None = None,
    now: datetime | None = None,
) -> str | None:
    """Build the ``$filter`` of ``RecoveryPoints_List``; None when neither end is given.

    The filter has whole seconds, so an open end reaches an hour into the future (a point created this very second
    is not cut off); an open start is a year before the end.
    """
    if start_time is None and end_time is None:
        return None
    if end_time:
        end = coerce_datetime("end_time", end_time)
    else:
        end = (now or datetime.now(timezone.utc)) + timedelta(hours=1)
    start = coerce_datetime("start_time", start_time) if start_time else end - timedelta(days=365)
    return f"startDate eq '{format_filter_datetime(start)}' and endDate eq '{format_filter_datetime(end)}'"


def build_restore_request(restore_request: Any) -> dict[str, Any]:
    """Validate a ``RestoreRequest`` (its ``properties``, or the whole body) and wrap it in ``properties``."""
    props = dict(restore_request.get("properties", restore_request)) if isinstance(restore_request, Mapping) else None
    if not props or not isinstance(props.get("objectType"), str):
        raise AzureBackupConfigError(
            "restore_request", restore_request, "needs an objectType (e.g. IaasVMRestoreRequest)"
        )
    return {"properties": props}


# --------------------------------------------------------------------------------------------------------------------
# URL building
# --------------------------------------------------------------------------------------------------------------------


def _segment(value: str) -> str:
    return quote(value, safe="")


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
