"""The ARM resource handlers of the Backup API below one vault: vault, protected items, recovery points, backup and
restore triggers and their async operations, jobs (get / list / cancel). :mod:`.routes` maps requests to them.

Every handler gets an :class:`ArmContext` (the request, the resolved vault and the route's named groups) and runs
with that vault's lock held; it returns a response or raises :class:`~..wire.ArmError`. The module is one class of
handlers that share the async-URL helpers; its length is the length of the API surface.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import urlencode, urlsplit

from airflow_backup_provider.emulator.config import EmulatorConfig
from airflow_backup_provider.emulator.faults import FaultBook
from airflow_backup_provider.emulator.odata import (
    decode_offset_token,
    decode_skip_token,
    encode_offset_token,
    encode_skip_token,
    enum_value,
    invalid_filter,
    invalid_input,
    parse_filter,
    parse_filter_date,
    parse_iso,
)
from airflow_backup_provider.emulator.render import (
    fmt_time,
    render_item,
    render_job,
    render_operation,
    render_recovery_point,
    render_vault,
)
from airflow_backup_provider.emulator.state import (
    NON_TERMINAL_JOB_STATUSES,
    CancelOperationState,
    ItemState,
    JobState,
    OperationState,
    RecoveryPointState,
    VaultState,
)
from airflow_backup_provider.emulator.wire import ArmError, HttpRequest, HttpResponse, Target, json_response

# Backup request objectType per workload, restore request objectTypes per workload (SDK discriminators).
BACKUP_REQUEST_TYPE = {
    "VM": "IaasVMBackupRequest",
    "AzureFileShare": "AzureFileShareBackupRequest",
    "SQLDataBase": "AzureWorkloadBackupRequest",
}
RESTORE_REQUEST_TYPES = {
    "VM": frozenset({"IaasVMRestoreRequest", "IaasVMRestoreWithRehydrationRequest"}),
    "AzureFileShare": frozenset({"AzureFileShareRestoreRequest"}),
    "SQLDataBase": frozenset(
        {
            "AzureWorkloadRestoreRequest",
            "AzureWorkloadSQLRestoreRequest",
            "AzureWorkloadSQLPointInTimeRestoreRequest",
            "AzureWorkloadSQLRestoreWithRehydrateRequest",
            "AzureWorkloadSQLPointInTimeRestoreWithRehydrateRequest",
        }
    ),
}
NEXT_LINK_API_VERSION = "2017-07-01"  # the service echoes old api-versions in URLs it hands out (spec examples)
BACKUP_HEADER_API_VERSION = "2016-12-01"
RESTORE_HEADER_API_VERSION = "2017-07-01"
CANCEL_HEADER_API_VERSION = "2017-07-01"

JOB_STATUS_VALUES = (
    "Invalid",
    "InProgress",
    "Completed",
    "Failed",
    "CompletedWithWarnings",
    "Cancelled",
    "Cancelling",
)
JOB_OPERATION_VALUES = (
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
)
BACKUP_MANAGEMENT_TYPES = (
    "Invalid",
    "AzureIaasVM",
    "MAB",
    "DPM",
    "AzureBackupServer",
    "AzureSql",
    "AzureStorage",
    "AzureWorkload",
    "DefaultBackup",
)
BACKUP_TYPES = ("Full", "Differential", "Log", "CopyOnlyFull", "Incremental", "SnapshotFull", "SnapshotCopyOnlyFull")
# Filter fields of the legacy ProtectedItemQueryObject that the emulator accepts but does not filter on.
IGNORED_ITEM_FILTER_FIELDS = frozenset({"healthstate", "backupenginename", "backupsetname"})
# BMSRPQueryObject fields other than the date range: accepted, not applied.
IGNORED_RP_FILTER_FIELDS = frozenset(
    {"restorepointquerytype", "extendedinfo", "movereadyrponly", "includesoftdeletedrp", "targettier"}
)


class ArmHost(Protocol):
    """What the handlers need of the application."""

    base_url: str
    config: EmulatorConfig
    faults: FaultBook


@dataclass
class ArmContext:
    """Per-request facts shared by the ARM handlers."""

    request: HttpRequest
    target: Target
    now: datetime
    correlation_id: str
    vault: VaultState
    params: dict[str, str] = field(default_factory=dict)  # the route's named groups, percent-decoded


class ArmHandlers:
    """The resource handlers; each is named by a route in :data:`.routes.ROUTES`."""

    def __init__(self, host: ArmHost) -> None:
        self.host = host

    def _async_base(self, method: str, path: str) -> str:
        """Base URL for Location / Azure-AsyncOperation / nextLink, honouring a foreign_async_host fault."""
        if self.host.faults.take(("foreign_async_host",), method, path):
            parts = urlsplit(self.host.base_url)
            host = "127.0.0.1" if parts.hostname == "localhost" else "localhost"
            return f"{parts.scheme}://{host}:{parts.port}"
        return self.host.base_url

    # ---- vault, items, recovery points -------------------------------------------------------------------------------

    def get_vault(self, context: ArmContext) -> HttpResponse:
        return json_response(200, render_vault(context.vault))

    def _require_item(self, context: ArmContext) -> ItemState:
        item = None
        if context.params["fabric"].lower() == "azure":
            item = context.vault.find_item(context.params["container"], context.params["item"])
        if item is None:
            raise ArmError(
                404,
                "BMSUserErrorDataSourceObjectNotFound",
                "Item not found. Selected item might have been deleted. "
                "Please check if item is registered to the vault.",
            )
        return item

    def get_item(self, context: ArmContext) -> HttpResponse:
        return json_response(200, render_item(context.vault, self._require_item(context)))

    def list_items(self, context: ArmContext) -> HttpResponse:
        """The vault's protected items, ``item_page_size`` per page (the service: up to 200) with a nextLink."""
        clauses = parse_filter(context.target.query_lower.get("$filter"))
        items = list(context.vault.items.values())
        for name, value in clauses:
            key = name.lower()
            wanted = value.lower()
            if key == "backupmanagementtype":
                items = [i for i in items if i.seed.backup_management_type.lower() == wanted]
            elif key in ("itemtype", "workloadtype"):
                items = [i for i in items if i.seed.workload.lower() == wanted]
            elif key == "friendlyname":
                items = [i for i in items if i.seed.friendly_name.lower() == wanted]
            elif key == "containername":
                items = [
                    i for i in items
                    if wanted in (i.seed.container_name.lower(), i.seed.container_name.split(";", 1)[1].lower())
                ]  # fmt: skip
            elif key == "policyname":
                items = [
                    i for i in items if render_item(context.vault, i)["properties"]["policyName"].lower() == wanted
                ]
            elif key == "fabricname":
                items = [i for i in items if i.seed.fabric_name.lower() == wanted]
            elif key not in IGNORED_ITEM_FILTER_FIELDS:
                raise invalid_filter(f"{name} eq '{value}'")
        token = context.target.query_lower.get("$skiptoken")
        offset = decode_offset_token(token) if token else 0
        size = self.host.config.item_page_size
        page = items[offset : offset + size]
        body: dict[str, Any] = {"value": [render_item(context.vault, i) for i in page]}
        if offset + size < len(items):
            params = [("api-version", context.target.query_lower.get("api-version", NEXT_LINK_API_VERSION))]
            raw_filter = context.target.query_lower.get("$filter")
            if raw_filter:
                params.append(("$filter", raw_filter))
            params.append(("$skiptoken", encode_offset_token(offset + size)))
            base = self._async_base(context.request.method, context.target.path)
            body["nextLink"] = f"{base}{context.vault.vault_path}/backupProtectedItems?{urlencode(params)}"
        return json_response(200, body)

    def list_recovery_points(self, context: ArmContext) -> HttpResponse:
        item = self._require_item(context)
        clauses = parse_filter(context.target.query_lower.get("$filter"))
        start: datetime | None = None
        end: datetime | None = None
        for name, value in clauses:
            key = name.lower()
            if key == "startdate":
                start = parse_filter_date(name, value)
            elif key == "enddate":
                end = parse_filter_date(name, value)
            elif key not in IGNORED_RP_FILTER_FIELDS:
                raise invalid_filter(f"{name} eq '{value}'")
        points = [
            rp for rp in reversed(item.recovery_points)
            if (start is None or rp.time >= start) and (end is None or rp.time <= end)
        ]  # fmt: skip
        return json_response(
            200, {"value": [render_recovery_point(context.vault, item, rp) for rp in points], "nextLink": None}
        )

    def get_recovery_point(self, context: ArmContext) -> HttpResponse:
        item = self._require_item(context)
        rp = _find_rp(item, context.params["rp"])
        return json_response(200, render_recovery_point(context.vault, item, rp))

    # ---- backup / restore triggers and their async operations ---------------------------------------------

    def trigger_backup(self, context: ArmContext) -> HttpResponse:
        item = self._require_item(context)
        properties = _request_properties(context.request)
        expected = BACKUP_REQUEST_TYPE[item.workload]
        object_type = properties.get("objectType")
        if object_type != expected:
            raise invalid_input(
                f"The backup request objectType '{object_type}' is not valid for the protected item "
                f"'{item.seed.protected_item_name}' (workload {item.workload}); expected '{expected}'."
                if object_type
                else "Input provided for the call is invalid: 'properties.objectType' is required."
            )
        backup_type: str | None = None
        if item.workload == "SQLDataBase":
            requested = str(properties.get("backupType") or "Full")
            matches = [t for t in BACKUP_TYPES if t.lower() == requested.lower()]
            if not matches:
                raise invalid_input(
                    f"Input provided for the call is invalid: backupType '{requested}' is not supported."
                )
            backup_type = matches[0]
        expiry = properties.get("recoveryPointExpiryTimeInUTC")
        if expiry is not None:
            parsed = parse_iso(expiry)
            if parsed is None:
                raise invalid_input(f"Input provided for the call is invalid: recoveryPointExpiryTimeInUTC '{expiry}'.")
            if parsed <= context.now:
                raise invalid_input("Recovery point expiry time must be in the future.")
        if context.vault.active_backup_job(item) is not None:
            raise ArmError(
                400,
                "UserErrorBackupOperationInProgress",
                "Unable to initiate backup as another backup operation is currently in progress. Please wait until "
                "the current backup operation is completed and then retry.",
            )
        op = self._start_operation(context, item, "backup", backup_type=backup_type)
        return self._accepted_with_operation(context, item, op, restore=False)

    def trigger_restore(self, context: ArmContext) -> HttpResponse:
        item = self._require_item(context)
        rp = _find_rp(item, context.params["rp"])
        properties = _request_properties(context.request)
        object_type = properties.get("objectType")
        allowed = RESTORE_REQUEST_TYPES[item.workload]
        if object_type not in allowed:
            raise invalid_input(
                f"The restore request objectType '{object_type}' is not valid for the protected item "
                f"'{item.seed.protected_item_name}'; expected one of {', '.join(sorted(allowed))}."
                if object_type
                else "Input provided for the call is invalid: 'properties.objectType' is required."
            )
        info = {
            "recoveryPointTime": fmt_time(rp.time),
            "recoveryType": str(properties.get("recoveryType") or "OriginalLocation"),
        }
        op = self._start_operation(context, item, "restore", restore_info=info)
        return self._accepted_with_operation(context, item, op, restore=True)

    def _start_operation(
        self,
        context: ArmContext,
        item: ItemState,
        kind: str,
        backup_type: str | None = None,
        restore_info: dict[str, str] | None = None,
    ) -> OperationState:
        failed = self.host.faults.take(("operation_failed",), context.request.method, context.target.path)
        job_id = None
        if failed is None:
            job = context.vault.create_job(
                item,
                "Backup" if kind == "backup" else "Restore",
                now=context.now,
                activity_id=context.correlation_id,
                time_scale=self.host.config.time_scale,
                default_duration=self.host.config.default_job_duration,
                backup_type=backup_type,
                restore_info=restore_info,
            )
            job_id = job.job_id
        op = OperationState(
            op_id=str(uuid.uuid4()),
            kind=kind,
            item=item,
            job_id=job_id,
            start=context.now,
            polls_remaining=self.host.config.operation_polls_in_progress,
        )
        if failed is not None:
            op.error = {
                "code": "CloudInternalError",
                "message": "Microsoft Azure Backup encountered an internal error. Wait for a few minutes and then try "
                "the operation again. If the issue persists, please contact Microsoft support.",
            }
        context.vault.operations[op.op_id] = op
        return op

    def _accepted_with_operation(
        self, context: ArmContext, item: ItemState, op: OperationState, restore: bool
    ) -> HttpResponse:
        base = self._async_base(context.request.method, context.target.path)
        container, name = item.seed.container_name, item.seed.protected_item_name
        if restore:
            # Restore 202s spell names in lower case (TriggerRestore_ALR_IaasVMRestoreRequest.json).
            prefix = base + context.vault.vault_path
            container, name = container.lower(), name.lower()
            version = RESTORE_HEADER_API_VERSION
        else:
            # Backup 202s use "/Subscriptions/" and, for VMs, "iaasvmcontainer" without "v2" (TriggerBackup_Post.json).
            prefix = base + context.vault.vault_path_capital
            container = container.replace(";iaasvmcontainerv2;", ";iaasvmcontainer;")
            name = name.replace(";iaasvmcontainerv2;", ";iaasvmcontainer;")
            version = BACKUP_HEADER_API_VERSION
        item_url = (
            f"{prefix}/backupFabrics/{item.seed.fabric_name}/protectionContainers/{container}/protectedItems/{name}"
        )
        return HttpResponse(
            202,
            [
                ("Azure-AsyncOperation", f"{item_url}/operationsStatus/{op.op_id}?api-version={version}"),
                ("Location", f"{item_url}/operationResults/{op.op_id}?api-version={version}"),
                ("Retry-After", str(self.host.config.retry_after)),
            ],
        )

    def _poll(self, context: ArmContext, op_id: str) -> OperationState:
        """One poll of an async operation (any of the three endpoints): counts down its InProgress polls."""
        op = context.vault.operations.get(op_id) or context.vault.operations.get(op_id.lower())
        if op is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{op_id}' was not found.")
        if op.end is None and not op.in_progress_fault_applied:
            armed = self.host.faults.take(("operation_in_progress",), context.request.method, context.target.path)
            if armed is not None:
                op.in_progress_fault_applied = True
                op.polls_remaining = max(op.polls_remaining, armed.fault.polls)
        if op.end is None:
            if op.polls_remaining > 0:
                op.polls_remaining -= 1
            else:
                op.end = context.now
        return op

    def get_operation_status(self, context: ArmContext) -> HttpResponse:
        op = self._poll(context, context.params["op"])
        return json_response(200, render_operation(op))

    def get_operation_result(self, context: ArmContext) -> HttpResponse:
        op = self._poll(context, context.params["op"])
        if op.status == "InProgress":
            url = self.host.base_url + context.target.raw_path
            status_url = url.rsplit("/operationResults/", 1)[0] + f"/operationsStatus/{op.op_id}"
            version = context.target.query_lower.get("api-version", BACKUP_HEADER_API_VERSION)
            return HttpResponse(
                202,
                [
                    ("Location", f"{url}?api-version={version}"),
                    ("Azure-AsyncOperation", f"{status_url}?api-version={version}"),
                    ("Retry-After", str(self.host.config.retry_after)),
                ],
            )
        if op.status == "Failed" and op.error:
            raise ArmError(400, op.error["code"], op.error["message"])
        return HttpResponse(204)

    # ---- jobs -------------------------------------------------------------------------------------------------

    def _require_job(self, context: ArmContext) -> JobState:
        job_id = context.params["job"]
        job = context.vault.job(job_id)
        if job is None:
            raise _job_not_found(job_id)
        return job

    def get_job(self, context: ArmContext) -> HttpResponse:
        job = self._require_job(context)
        if self.host.faults.job_not_found(context.request.method, context.target.path, job.job_id, job.seq):
            raise _job_not_found(context.params["job"])
        return json_response(200, render_job(context.vault, job, context.now))

    def list_jobs(self, context: ArmContext) -> HttpResponse:
        """A page of the vault's jobs, newest first: O(page) for the usual filters (time bounds and the skip token
        are bisected, a non-terminal status walks only the running jobs, a jobId is one look-up)."""
        raw_filter = context.target.query_lower.get("$filter")
        vault = context.vault
        checks: list[tuple[str, str]] = []  # (field, wanted) pairs, see _job_field
        since: datetime | None = None
        before: tuple[datetime, int] | None = None
        active_only = False
        only: str | None = None
        for name, value in parse_filter(raw_filter):
            key = name.lower()
            clause = f"{name} eq '{value}'"
            if key == "status":
                status = enum_value(clause, value, JOB_STATUS_VALUES)
                active_only = active_only or status in NON_TERMINAL_JOB_STATUSES
                checks.append(("status", status))
            elif key == "operation":
                operation = enum_value(clause, value, JOB_OPERATION_VALUES).lower()
                checks.append(("operation", operation))
            elif key == "backupmanagementtype":
                bmt = enum_value(clause, value, BACKUP_MANAGEMENT_TYPES).lower()
                checks.append(("backupmanagementtype", bmt))
            elif key == "jobid":
                wanted = value.strip().lower()
                only = wanted if only in (None, wanted) else "\x00"  # two different ids: nothing matches
            elif key == "starttime":
                moment = parse_filter_date(name, value)
                since = moment if since is None else max(since, moment)
            elif key == "endtime":
                bound = (parse_filter_date(name, value), sys.maxsize)  # start <= endTime
                before = bound if before is None else min(before, bound)
            else:
                raise invalid_filter(clause)
        token = context.target.query_lower.get("$skiptoken")
        if token:
            after = decode_skip_token(token)
            before = after if before is None else min(before, after)
        size = self.host.config.job_page_size
        candidates: Iterable[JobState]
        if only is not None:
            job = vault.job(only)
            candidates = [
                job for job in ([job] if job is not None else [])
                if (before is None or job.key < before) and (since is None or job.start >= since)
            ]  # fmt: skip
        else:
            candidates = vault.iter_jobs_newest_first(before=before, since=since, active_only=active_only)
        page: list[JobState] = []
        more = False
        for job in candidates:
            if all(_job_field(job, name) == wanted for name, wanted in checks):
                if len(page) == size:
                    more = True
                    break
                page.append(job)
        body: dict[str, Any] = {"value": [render_job(vault, j, context.now) for j in page]}
        if more:
            last = page[-1]
            params = [("api-version", NEXT_LINK_API_VERSION)]
            if raw_filter:
                params.append(("$filter", raw_filter))
            params.append(("$skiptoken", encode_skip_token(last.start, last.seq)))
            base = self._async_base(context.request.method, context.target.path)
            body["nextLink"] = f"{base}{vault.vault_path}/backupJobs?{urlencode(params)}"
        return json_response(200, body)

    def cancel_job(self, context: ArmContext) -> HttpResponse:
        job = self._require_job(context)
        if job.status != "InProgress":
            raise ArmError(
                400,
                "BMSUserErrorJobNotCancellable",
                f"The job '{job.job_id}' cannot be cancelled because it is in '{job.status}' state. Only jobs that "
                "are in progress can be cancelled.",
            )
        config = self.host.config
        context.vault.cancel(job, context.now, config.cancel_duration / config.time_scale)
        op = CancelOperationState(op_id=str(uuid.uuid4()), job_id=job.job_id)
        context.vault.cancel_operations[op.op_id] = op
        base = self._async_base(context.request.method, context.target.path)
        location = (
            f"{base}{context.vault.vault_path}/backupJobs/{job.job_id}/operationResults/{op.op_id}"
            f"?api-version={CANCEL_HEADER_API_VERSION}"
        )
        return HttpResponse(202, [("Location", location), ("Retry-After", str(self.host.config.retry_after))])

    def get_cancel_result(self, context: ArmContext) -> HttpResponse:
        op_id = context.params["op"]
        op = context.vault.cancel_operations.get(op_id) or context.vault.cancel_operations.get(op_id.lower())
        if op is None:
            raise ArmError(404, "OperationNotFound", f"The operation '{op_id}' was not found.")
        job = context.vault.jobs[op.job_id.lower()]
        if job.status == "Cancelling":
            version = context.target.query_lower.get("api-version", CANCEL_HEADER_API_VERSION)
            return HttpResponse(
                202,
                [
                    ("Location", f"{self.host.base_url}{context.target.raw_path}?api-version={version}"),
                    ("Retry-After", str(self.host.config.retry_after)),
                ],
            )
        return HttpResponse(204)


def _job_field(job: JobState, name: str) -> str:
    """The value a ``$filter`` check compares: the status as spelled, operation and management type lower-cased."""
    if name == "status":
        return job.status
    if name == "operation":
        return job.operation.lower()
    return job.item.seed.backup_management_type.lower()


def _job_not_found(job_id: str) -> ArmError:
    return ArmError(
        404,
        "BMSUserErrorJobNotFound",
        f"The job '{job_id}' was not found in the vault. The job ID might be incorrect or the job might have expired.",
    )


def _find_rp(item: ItemState, rp_id: str) -> RecoveryPointState:
    for rp in item.recovery_points:
        if rp.rp_id == rp_id:
            return rp
    raise ArmError(
        404,
        "BMSUserErrorRecoveryPointNotFound",
        f"Recovery point '{rp_id}' was not found for the item. It might have expired or been deleted.",
    )


def _request_properties(request: HttpRequest) -> dict[str, Any]:
    try:
        body = json.loads(request.body.decode("utf-8")) if request.body else None
    except (ValueError, UnicodeDecodeError):
        raise invalid_input("Input provided for the call is invalid: the request body is not valid JSON.") from None
    properties = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(properties, dict):
        raise invalid_input("Input provided for the call is invalid: 'properties' is required.")
    return properties
