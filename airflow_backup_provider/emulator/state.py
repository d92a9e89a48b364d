"""In-memory model of one Recovery Services vault: protected items, jobs, async operations, recovery points, tokens.

Nothing in here is thread-safe on its own: the HTTP application (:mod:`.app`) holds one lock around every request and
every admin call, which keeps the model simple and consistent (requests are short; nothing sleeps under the lock).

Time: jobs progress lazily from the wall clock. A job started at ``start`` with a *virtual* duration ``D`` runs
``D / time_scale`` wall seconds; :meth:`VaultState.advance` finalizes jobs whose time is up (exactly once — that is
where recovery points are added and the item's last-backup fields change) and is called before every request. All
timestamps in responses are real wall-clock UTC times, and the job ``duration`` field is the wall-clock elapsed time.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from .models import (
    FILE_SHARE_ITEM,
    RESOURCE_GROUP,
    SEEDED_ITEMS,
    SQL_ITEM,
    SUBSCRIPTION_ID,
    VAULT_NAME,
    VM_ITEM,
    ItemBehavior,
    JobView,
    SeededItem,
)

JOBS_TYPE = "Microsoft.RecoveryServices/vaults/backupJobs"
ITEMS_TYPE = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems"
RPS_TYPE = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints"
VAULT_TYPE = "Microsoft.RecoveryServices/vaults"
MIN_DATETIME = "0001-01-01T00:00:00Z"  # what the service sends for task times that have not happened yet
NON_TERMINAL_JOB_STATUSES = frozenset({"InProgress", "Cancelling"})
FIRST_TASK_SHARE = 0.3  # the first task (snapshot / prepare) takes 30 % of a job

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
JOB_TYPE = {"VM": "AzureIaaSVMJob", "AzureFileShare": "AzureStorageJob", "SQLDataBase": "AzureWorkloadJob"}

# Error details of failed / partially failed jobs, per workload (errorCode is an int in job error infos).
_FAILURE = {
    "VM": {
        "errorCode": 400093,
        "errorTitle": "UserErrorGuestAgentStatusUnavailable",
        "errorString": "VM Agent is unable to communicate with the Azure Backup Service.",
        "recommendations": [
            "Ensure that the VM agent is installed, running and up to date, and that the VM has network connectivity.",
        ],
    },
    "AzureFileShare": {
        "errorCode": 2209,
        "errorString": "The storage account is not accessible: a network rule or a lock blocks the backup.",
        "recommendations": ["Allow trusted Azure services on the storage account firewall and retry the backup."],
    },
    "SQLDataBase": {
        "errorCode": 59006,
        "errorTitle": "UserErrorSQLNoSysadminMembership",
        "errorString": "Azure Backup does not have sysadmin privileges on the SQL instance.",
        "recommendations": ["Add the NT SERVICE\\AzureWLBackupPluginSvc account to the sysadmin role and retry."],
        "additionalDetails": "",
    },
}
_WARNING = {
    "VM": {
        "errorCode": 410001,
        "errorTitle": "UserErrorVssSnapshotFailed",
        "errorString": "Application-consistent snapshot failed; a crash-consistent recovery point was created instead.",
        "recommendations": ["Check the VSS writers on the VM (vssadmin list writers) and retry."],
    },
    "AzureFileShare": {
        "errorCode": 2301,
        "errorString": "Backup completed with warnings: some files were skipped because they were in use.",
        "recommendations": ["Review the skipped files in the job details."],
    },
    "SQLDataBase": {
        "errorCode": 59201,
        "errorTitle": "UserErrorSQLLogChainBroken",
        "errorString": "Backup completed with warnings: the log chain was re-established by this full backup.",
        "recommendations": ["No action is required."],
        "additionalDetails": "",
    },
}
_TASKS = {
    "Backup": ("Take Snapshot", "Transfer data to vault"),
    "Restore": ("Prepare restore", "Transfer data"),
    "ConfigureBackup": ("Configure backup", "Register item"),
}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def fmt_time(value: datetime) -> str:
    """ARM date-time: UTC, microseconds, ``Z`` suffix (``2017-08-03T05:31:07.014604Z``)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _fraction7(total_seconds: float) -> tuple[int, int]:
    """Split seconds into whole seconds and 100-ns ticks (the .NET precision)."""
    ticks = max(0, round(total_seconds * 10_000_000))
    return ticks // 10_000_000, ticks % 10_000_000


def fmt_iso_duration(seconds: float) -> str:
    """.NET ``XmlConvert.ToString(TimeSpan)`` style: ``PT9.8782791S``, ``PT20M23.0896697S``, ``PT0S``."""
    whole, ticks = _fraction7(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = "P" + (f"{days}D" if days else "") + "T"
    if hours:
        out += f"{hours}H"
    if minutes:
        out += f"{minutes}M"
    if secs or ticks or (not hours and not minutes):
        frac = f".{ticks:07d}".rstrip("0") if ticks else ""
        out += f"{secs}{frac}S"
    if out == "PT" and days:
        out = f"P{days}D"
    return out


def fmt_timespan(seconds: float) -> str:
    """.NET ``TimeSpan.ToString()`` style: ``00:20:23.0896697`` (``d.hh:mm:ss.fffffff`` beyond a day)."""
    whole, ticks = _fraction7(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    out = (f"{days}." if days else "") + f"{hours:02d}:{minutes:02d}:{secs:02d}"
    return out + (f".{ticks:07d}" if ticks else "")


def fmt_dotnet_time(value: datetime) -> str:
    """``M/d/yyyy h:mm:ss tt`` — how ARM prints times inside ExpiredAuthenticationToken messages."""
    value = value.astimezone(timezone.utc)
    hour12 = value.hour % 12 or 12
    ampm = "AM" if value.hour < 12 else "PM"
    return f"{value.month}/{value.day}/{value.year} {hour12}:{value.minute:02d}:{value.second:02d} {ampm}"


def _stable_int(text: str, low: int, high: int) -> int:
    digest = hashlib.sha256(text.encode()).digest()
    return low + int.from_bytes(digest[:8], "big") % (high - low)


# --------------------------------------------------------------------------------------------------------------------
# Entities
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class RecoveryPointState:
    rp_id: str
    time: datetime
    backup_type: str = "Full"  # SQL only: RestorePointType of the point


@dataclass
class ItemState:
    seed: SeededItem
    behavior: ItemBehavior
    protected_item_data_id: str
    last_backup_status: str
    last_backup_time: datetime
    last_backup_failed: bool = False
    recovery_points: list[RecoveryPointState] = field(default_factory=list)  # oldest first

    @property
    def workload(self) -> str:
        return self.seed.workload


@dataclass
class JobState:
    job_id: str
    item: ItemState
    operation: str  # Backup | Restore | ConfigureBackup
    start: datetime
    duration: float  # wall-clock seconds
    outcome: str
    is_user_triggered: bool
    activity_id: str
    seq: int
    backup_type: str | None = None
    restore_info: dict[str, str] = field(default_factory=dict)
    cancel_requested_at: datetime | None = None
    cancel_duration: float = 0.0
    final_status: str | None = None
    end: datetime | None = None

    @property
    def status(self) -> str:
        if self.final_status:
            return self.final_status
        return "Cancelling" if self.cancel_requested_at else "InProgress"

    @property
    def job_type(self) -> str:
        return JOB_TYPE[self.item.workload]

    def elapsed(self, now: datetime) -> float:
        """Wall seconds of work done: frozen at the cancel request, capped at the duration."""
        stop = self.end or self.cancel_requested_at or now
        return max(0.0, min((stop - self.start).total_seconds(), self.duration))

    def view(self) -> JobView:
        return JobView(
            job_id=self.job_id,
            status=self.status,
            operation=self.operation,
            protected_item_name=self.item.seed.protected_item_name,
            start_time=self.start,
            end_time=self.end,
            job_type=self.job_type,
        )


@dataclass
class OperationState:
    """Async operation behind a 202 (backup or restore trigger)."""

    op_id: str
    kind: str  # backup | restore
    item: ItemState
    job_id: str | None
    start: datetime
    polls_remaining: int
    error: dict[str, str] | None = None
    end: datetime | None = None
    in_progress_fault_applied: bool = False

    @property
    def status(self) -> str:
        if self.end is None:
            return "InProgress"
        return "Failed" if self.error else "Succeeded"


@dataclass
class CancelOperationState:
    op_id: str
    job_id: str


@dataclass
class TokenState:
    client_id: str
    issued_at: datetime
    expires_at: datetime


# --------------------------------------------------------------------------------------------------------------------
# The vault
# --------------------------------------------------------------------------------------------------------------------


class VaultState:
    """The seeded vault and everything that happens to it. Callers hold the application lock."""

    def __init__(self, time_scale: float, default_job_duration: float, location: str) -> None:
        self.time_scale = time_scale
        self.default_job_duration = default_job_duration
        self.location = location
        self.subscription_id = SUBSCRIPTION_ID
        self.resource_group = RESOURCE_GROUP
        self.vault_name = VAULT_NAME
        self.items: dict[str, ItemState] = {}
        self.jobs: dict[str, JobState] = {}
        self.operations: dict[str, OperationState] = {}
        self.cancel_operations: dict[str, CancelOperationState] = {}
        self.tokens: dict[str, TokenState] = {}
        self._seq = 0
        self._rng = random.Random()
        self.seed(utc_now())

    # ---- identity helpers ------------------------------------------------------------------------------------------

    @property
    def vault_path(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.RecoveryServices/vaults/{self.vault_name}"
        )

    @property
    def vault_path_capital(self) -> str:
        # The service spells job ids and some header URLs with "/Subscriptions/" (see the spec examples).
        return "/S" + self.vault_path[2:]

    def item_path(self, item: ItemState) -> str:
        return (
            f"{self.vault_path}/backupFabrics/{item.seed.fabric_name}/protectionContainers/{item.seed.container_name}"
            f"/protectedItems/{item.seed.protected_item_name}"
        )

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def new_rp_id(self) -> str:
        return str(self._rng.randrange(10**13, 10**15))

    # ---- seed --------------------------------------------------------------------------------------------------------

    def seed(self, now: datetime) -> None:
        """Three protected items, one old recovery point each, and a short job history."""
        self.items = {}
        self.jobs = {}
        self.operations = {}
        self.cancel_operations = {}
        self.tokens = {}
        day = timedelta(days=1)
        for seed_item in SEEDED_ITEMS:
            last = (now - day).replace(hour=22, minute=30, second=0, microsecond=0)
            item = ItemState(
                seed=seed_item,
                behavior=ItemBehavior(),
                protected_item_data_id=str(_stable_int(seed_item.protected_item_name, 10**17, 10**18)),
                last_backup_status="Completed" if seed_item.workload == "VM" else "Healthy",
                last_backup_time=last,
            )
            item.recovery_points.append(
                RecoveryPointState(
                    rp_id=str(_stable_int("rp:" + seed_item.protected_item_name, 10**13, 10**14)), time=last
                )
            )
            self.items[seed_item.protected_item_name.lower()] = item

        def seed_job(
            name: str, item: SeededItem, operation: str, *, start: datetime, minutes: float, outcome: str
        ) -> None:
            state = self.items[item.protected_item_name.lower()]
            job = JobState(
                job_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"azure-backup-emulator/{name}")),
                item=state,
                operation=operation,
                start=start,
                duration=minutes * 60,
                outcome=outcome,
                is_user_triggered=False,
                activity_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"azure-backup-emulator/activity/{name}")),
                seq=self.next_seq(),
                backup_type="Full" if item.workload == "SQLDataBase" and operation == "Backup" else None,
            )
            job.final_status = outcome
            job.end = start + timedelta(seconds=job.duration)
            self.jobs[job.job_id] = job

        for index, seed_item in enumerate(SEEDED_ITEMS):
            state = self.items[seed_item.protected_item_name.lower()]
            configured = now - 30 * day + index * timedelta(minutes=7)
            seed_job(
                f"configure-{index}", seed_item, "ConfigureBackup", start=configured, minutes=1.5, outcome="Completed"
            )
            minutes = {"VM": 23.0, "AzureFileShare": 2.0, "SQLDataBase": 11.0}[seed_item.workload]
            started = state.last_backup_time - timedelta(minutes=minutes)
            seed_job(f"backup-{index}", seed_item, "Backup", start=started, minutes=minutes, outcome="Completed")
        seed_job("backup-vm-failed", VM_ITEM, "Backup", start=now - 2 * day, minutes=4.0, outcome="Failed")
        seed_job(
            "backup-share-warn",
            FILE_SHARE_ITEM,
            "Backup",
            start=now - 3 * day,
            minutes=3.0,
            outcome="CompletedWithWarnings",
        )
        seed_job("backup-sql-old", SQL_ITEM, "Backup", start=now - 4 * day, minutes=9.0, outcome="Completed")

    # ---- lookups -----------------------------------------------------------------------------------------------------

    def find_item(self, container_name: str, item_name: str) -> ItemState | None:
        """Case-insensitive lookup of a (container, item) pair, as the service does."""
        item = self.items.get(item_name.lower())
        if item is None or item.seed.container_name.lower() != container_name.lower():
            return None
        return item

    def item_by_name(self, item_name: str) -> ItemState | None:
        return self.items.get(item_name.lower())

    # ---- time --------------------------------------------------------------------------------------------------------

    def advance(self, now: datetime) -> None:
        """Finalize every job whose (cancel) time is up; side effects happen exactly once here."""
        for job in self.jobs.values():
            if job.final_status:
                continue
            if job.cancel_requested_at is not None:
                done_at = job.cancel_requested_at + timedelta(seconds=job.cancel_duration)
                if now >= done_at:
                    job.final_status = "Cancelled"
                    job.end = done_at
                continue
            done_at = job.start + timedelta(seconds=job.duration)
            if now >= done_at:
                job.final_status = job.outcome
                job.end = done_at
                self._on_job_finished(job)

    def _on_job_finished(self, job: JobState) -> None:
        if job.operation != "Backup":
            return
        item = job.item
        assert job.end is not None
        succeeded = job.outcome in ("Completed", "CompletedWithWarnings")
        if item.workload == "VM":
            item.last_backup_status = job.outcome
        else:
            item.last_backup_status = "Healthy" if succeeded else "Unhealthy"
        item.last_backup_time = job.end
        item.last_backup_failed = not succeeded
        if succeeded:
            rp_type = job.backup_type or "Full"
            if rp_type not in ("Full", "Log", "Differential", "Incremental", "SnapshotFull", "SnapshotCopyOnlyFull"):
                rp_type = "Full"  # CopyOnlyFull etc. surface as Full points
            item.recovery_points.append(RecoveryPointState(rp_id=self.new_rp_id(), time=job.end, backup_type=rp_type))

    # ---- mutations ---------------------------------------------------------------------------------------------------

    def create_job(
        self,
        item: ItemState,
        operation: str,
        *,
        now: datetime,
        activity_id: str,
        backup_type: str | None = None,
        restore_info: dict[str, str] | None = None,
    ) -> JobState:
        behavior = item.behavior
        job = JobState(
            job_id=str(uuid.uuid4()),
            item=item,
            operation=operation,
            start=now,
            duration=(self.default_job_duration if behavior.duration_seconds is None else behavior.duration_seconds)
            / self.time_scale,
            outcome=behavior.outcome,
            is_user_triggered=True,
            activity_id=activity_id,
            seq=self.next_seq(),
            backup_type=backup_type,
            restore_info=dict(restore_info or {}),
        )
        self.jobs[job.job_id] = job
        return job

    def active_backup_job(self, item: ItemState) -> JobState | None:
        for job in self.jobs.values():
            if job.item is item and job.operation == "Backup" and job.status in NON_TERMINAL_JOB_STATUSES:
                return job
        return None

    def sorted_jobs(self) -> list[JobState]:
        """Newest first (by start time, then creation order)."""
        return sorted(self.jobs.values(), key=lambda j: (j.start, j.seq), reverse=True)

    # ---- rendering: vault / items / recovery points ------------------------------------------------------------------

    def render_vault(self) -> dict[str, Any]:
        return {
            "id": self.vault_path,
            "name": self.vault_name,
            "type": VAULT_TYPE,
            "location": self.location,
            "tags": {},
            "etag": "W/\"datetime'2024-05-01T10%3A00%3A00.0000000Z'\"",
            "sku": {"name": "RS0", "tier": "Standard"},
            "properties": {
                "provisioningState": "Succeeded",
                "privateEndpointStateForBackup": "None",
                "privateEndpointStateForSiteRecovery": "None",
                "publicNetworkAccess": "Enabled",
                "secureScore": "Minimum",
                "bcdrSecurityLevel": "Fair",
                "redundancySettings": {
                    "standardTierStorageRedundancy": "GeoRedundant",
                    "crossRegionRestore": "Disabled",
                },
                "securitySettings": {
                    "softDeleteSettings": {
                        "softDeleteState": "Enabled",
                        "softDeleteRetentionPeriodInDays": 14,
                        "enhancedSecurityState": "Enabled",
                    },
                    "immutabilitySettings": {"state": "Disabled"},
                    "multiUserAuthorization": "Disabled",
                },
                "monitoringSettings": {
                    "azureMonitorAlertSettings": {"alertsForAllJobFailures": "Enabled"},
                    "classicAlertSettings": {"alertsForCriticalOperations": "Disabled"},
                },
                "moveState": "Unknown",
            },
        }

    def render_item(self, item: ItemState) -> dict[str, Any]:
        seed = item.seed
        rps = item.recovery_points
        policy_name = {"VM": "DefaultPolicy", "AzureFileShare": "FileSharePolicy", "SQLDataBase": "HourlyLogBackup"}[
            seed.workload
        ]
        props: dict[str, Any] = {
            "protectedItemType": {
                "VM": "Microsoft.Compute/virtualMachines",
                "AzureFileShare": "AzureFileShareProtectedItem",
                "SQLDataBase": "AzureVmWorkloadSQLDatabase",
            }[seed.workload],
            "backupManagementType": seed.backup_management_type,
            "workloadType": seed.workload,
            "containerName": seed.container_name,
            "sourceResourceId": seed.source_resource_id,
            "policyId": f"{self.vault_path}/backupPolicies/{policy_name}",
            "policyName": policy_name,
            "lastRecoveryPoint": fmt_time(rps[-1].time) if rps else None,
            "isScheduledForDeferredDelete": False,
            "isArchiveEnabled": False,
            "softDeleteRetentionPeriodInDays": 14,
            "vaultId": self.vault_path,
            "friendlyName": seed.friendly_name,
            "protectionState": "Protected",
            "protectionStatus": "Unhealthy" if item.last_backup_failed else "Healthy",
            "lastBackupStatus": item.last_backup_status,
            "lastBackupTime": fmt_time(item.last_backup_time),
        }
        extended: dict[str, Any] = {
            "oldestRecoveryPoint": fmt_time(rps[0].time) if rps else None,
            "recoveryPointCount": len(rps),
        }
        if seed.workload == "VM":
            # The service drops the "IaasVMContainer;" prefix in an IaaS VM item's containerName (spec examples).
            props["containerName"] = seed.container_name.split(";", 1)[1]
            props.update(
                {
                    "virtualMachineId": seed.source_resource_id,
                    "healthStatus": "ActionRequired" if item.last_backup_failed else "Passed",
                    "protectedItemDataId": item.protected_item_data_id,
                    "policyType": "V2",
                    "kpisHealths": {},
                }
            )
            extended["policyInconsistent"] = False
        elif seed.workload == "AzureFileShare":
            props["kpisHealths"] = {}
            extended.update({"policyState": "Consistent", "resourceState": "Active"})
            extended["resourceStateSyncTime"] = fmt_time(item.last_backup_time)
        else:
            server = seed.container_name.split(";")[-1]
            props.update(
                {
                    "serverName": server,
                    "parentName": "MSSQLSERVER",
                    "parentType": "AzureVmWorkloadSQLInstance",
                    "protectedItemDataSourceId": item.protected_item_data_id,
                    "protectedItemHealthStatus": "Unhealthy" if item.last_backup_failed else "Healthy",
                    "kpisHealths": {},
                }
            )
            if item.last_backup_failed:
                failure = _FAILURE["SQLDataBase"]
                props["lastBackupErrorDetail"] = {
                    "code": failure["errorTitle"],
                    "message": failure["errorString"],
                    "recommendations": failure["recommendations"],
                }
            extended.update({"policyState": "Consistent", "recoveryModel": "Full"})
        props["extendedInfo"] = extended
        return {"id": self.item_path(item), "name": seed.protected_item_name, "type": ITEMS_TYPE, "properties": props}

    def render_recovery_point(self, item: ItemState, rp: RecoveryPointState) -> dict[str, Any]:
        seed = item.seed
        if seed.workload == "VM":
            props: dict[str, Any] = {
                "objectType": "IaasVMRecoveryPoint",
                "recoveryPointType": "AppConsistent",
                "recoveryPointTime": fmt_time(rp.time),
                "recoveryPointAdditionalInfo": "",
                "sourceVMStorageType": "NormalStorage",
                "isSourceVMEncrypted": False,
                "isInstantIlrSessionActive": False,
                "recoveryPointTierDetails": [
                    {"type": "InstantRP", "status": "Valid"},
                    {"type": "HardenedRP", "status": "Valid"},
                ],
                "isManagedVirtualMachine": True,
                "virtualMachineSize": "Standard_D2s_v3",
                "originalStorageAccountOption": False,
                "osType": "Linux",
                "securityType": "None",
                "isPrivateAccessEnabledOnAnyDisk": False,
                "recoveryPointMoveReadinessInfo": {
                    "ArchivedRP": {
                        "isReadyForMove": False,
                        "additionalInfo": "Recovery point cannot be moved to Archive tier as it is too recent.",
                    }
                },
            }
        elif seed.workload == "AzureFileShare":
            account = seed.container_name.split(";")[-1]
            share = seed.friendly_name
            props = {
                "objectType": "AzureFileShareRecoveryPoint",
                "recoveryPointType": "FileSystemConsistent",
                "recoveryPointTime": fmt_time(rp.time),
                "fileShareSnapshotUri": (
                    f"https://{account}.file.core.windows.net/{share}?sharesnapshot="
                    f"{rp.time.astimezone(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.0000000Z')}"
                ),
                "recoveryPointSizeInGB": 1,
                "recoveryPointTierDetails": [{"type": "InstantRP", "status": "Valid"}],
            }
        else:
            props = {
                "objectType": "AzureWorkloadSQLRecoveryPoint",
                "recoveryPointTimeInUTC": fmt_time(rp.time),
                "type": rp.backup_type,
                "recoveryPointTierDetails": [{"type": "HardenedRP", "status": "Valid"}],
                "recoveryPointMoveReadinessInfo": {"ArchivedRP": {"isReadyForMove": False, "additionalInfo": ""}},
                "extendedInfo": {
                    "dataDirectoryTimeInUTC": fmt_time(rp.time),
                    "dataDirectoryPaths": [
                        {
                            "type": "Data",
                            "path": f"F:\\Data\\{seed.friendly_name}.mdf",
                            "logicalName": seed.friendly_name,
                        },
                        {
                            "type": "Log",
                            "path": f"G:\\Log\\{seed.friendly_name}_log.ldf",
                            "logicalName": f"{seed.friendly_name}_log",
                        },
                    ],
                },
            }
        return {
            "id": f"{self.item_path(item)}/recoveryPoints/{rp.rp_id}",
            "name": rp.rp_id,
            "type": RPS_TYPE,
            "properties": props,
        }

    # ---- rendering: jobs ---------------------------------------------------------------------------------------------

    def render_job(self, job: JobState, now: datetime) -> dict[str, Any]:
        """A JobResource; the Job shape follows the workload: AzureIaaSVMJob / AzureStorageJob / AzureWorkloadJob."""
        seed = job.item.seed
        workload = seed.workload
        status = job.status
        in_progress = status == "InProgress"
        elapsed = job.elapsed(now)
        wall = ((job.end or now) - job.start).total_seconds()
        fraction = 1.0 if job.duration <= 0 else min(1.0, elapsed / job.duration)
        tasks = self._render_tasks(job, elapsed)
        size_mb = _stable_int(job.job_id, 200, 4000)

        props: dict[str, Any] = {
            "jobType": job.job_type,
            "entityFriendlyName": seed.friendly_name,
            "backupManagementType": seed.backup_management_type,
            "operation": job.operation,
            "status": status,
            "startTime": fmt_time(job.start),
            "activityId": job.activity_id,
        }
        if job.end is not None:
            props["endTime"] = fmt_time(job.end)

        bag: dict[str, str] = {}
        done_ok = status in ("Completed", "CompletedWithWarnings")
        extended: dict[str, Any] = {"tasksList": tasks, "propertyBag": bag}
        errors: list[dict[str, Any]] = []
        if status == "Failed":
            errors = [dict(_FAILURE[workload])]
            extended["dynamicErrorMessage"] = _FAILURE[workload]["errorString"]
        elif status == "CompletedWithWarnings":
            errors = [dict(_WARNING[workload])]
            extended["dynamicErrorMessage"] = _WARNING[workload]["errorString"]
        if job.operation == "Restore":
            bag.update(
                {
                    "Recovery point time": fmt_time(_parse_or(job.restore_info.get("recoveryPointTime"), job.start)),
                    "Restore Type": job.restore_info.get("recoveryType", "OriginalLocation"),
                }
            )

        if workload == "VM":
            bag.setdefault("VM Name", seed.friendly_name)
            if job.operation == "Backup":
                bag["Backup Type"] = "AppConsistent" if status != "CompletedWithWarnings" else "CrashConsistent"
                if done_ok:
                    bag["Backup Size"] = f"{size_mb} MB"
            extended["progressPercentage"] = round(fraction * 100, 2) if not done_ok else 100.0
            if in_progress:
                extended["estimatedRemainingDuration"] = fmt_iso_duration(max(0.0, job.duration - elapsed))
            props.update(
                {
                    "duration": fmt_iso_duration(wall),
                    "actionsInfo": ["Cancellable"] if in_progress else [],
                    "virtualMachineVersion": "Compute",
                    "containerName": seed.container_name.split(";", 1)[1],
                    "isUserTriggered": job.is_user_triggered,
                }
            )
        elif workload == "AzureFileShare":
            account = seed.container_name.split(";")[-1]
            bag.update({"File Share Name": seed.friendly_name, "Storage Account Name": account})
            if job.operation == "Backup":
                bag["Data Transferred (in MB)"] = str(round(size_mb * fraction)) if status != "Failed" else "0"
            props.update(
                {
                    # Real payloads send the JobSupportedAction enum as its integer here (1 = Cancellable).
                    "duration": fmt_timespan(wall),
                    "actionsInfo": [1] if in_progress else [],
                    "storageAccountName": account,
                    "storageAccountVersion": "MicrosoftStorage",
                    "isUserTriggered": job.is_user_triggered,
                }
            )
        else:
            bag.update({"Server Name": seed.container_name.split(";")[-1], "Instance Name": "MSSQLSERVER"})
            if job.operation == "Backup":
                bag["Backup Type"] = job.backup_type or "Full"
                bag["Data Transferred (in MB)"] = str(round(size_mb * fraction)) if status != "Failed" else "0"
            props.update(
                {
                    "workloadType": "SQLDataBase",
                    "duration": fmt_timespan(wall),
                    "actionsInfo": ["Cancellable"] if in_progress else [],
                }
            )
        if errors:
            props["errorDetails"] = errors
        props["extendedInfo"] = extended
        return {
            "id": f"{self.vault_path_capital}/backupJobs/{job.job_id}",
            "name": job.job_id,
            "type": JOBS_TYPE,
            "properties": props,
        }

    def _render_tasks(self, job: JobState, elapsed: float) -> list[dict[str, Any]]:
        """Two tasks: the first takes FIRST_TASK_SHARE of the job, the second the rest (VM tasks carry times)."""
        names = _TASKS.get(job.operation, _TASKS["Backup"])
        split = job.duration * FIRST_TASK_SHARE
        bounds = [(0.0, split), (split, job.duration)]
        status = job.status
        tasks: list[dict[str, Any]] = []
        for index, (name, (begin, finish)) in enumerate(zip(names, bounds, strict=True)):
            last = index == len(names) - 1
            if status in ("Completed", "CompletedWithWarnings", "Failed"):
                task_status = status if last else "Completed"
            elif elapsed >= finish > begin:
                task_status = "Completed"  # finished before a cancel request froze the job
            elif elapsed >= begin:
                task_status = "Cancelled" if status == "Cancelled" else "InProgress"
            else:
                task_status = "NotStarted"
            if job.item.workload != "VM":
                # AzureStorageJobTaskDetails / AzureWorkloadJobTaskDetails only have taskId and status.
                tasks.append({"taskId": name, "status": task_status})
                continue
            started = task_status != "NotStarted"
            finished = task_status not in ("NotStarted", "InProgress")
            spent = max(0.0, min(finish, elapsed) - begin) if started else 0.0
            entry: dict[str, Any] = {
                "taskId": name,
                "startTime": fmt_time(job.start + timedelta(seconds=begin)) if started else MIN_DATETIME,
                "endTime": fmt_time(job.start + timedelta(seconds=begin + spent)) if finished else MIN_DATETIME,
                "duration": fmt_iso_duration(spent),
                "status": task_status,
            }
            if last:
                span = finish - begin
                if task_status in ("Completed", "CompletedWithWarnings"):
                    entry["progressPercentage"] = 100.0
                else:
                    entry["progressPercentage"] = round(100 * spent / span, 2) if span > 0 else 0.0
            tasks.append(entry)
        return tasks

    # ---- rendering: operations ---------------------------------------------------------------------------------------

    @staticmethod
    def render_operation(op: OperationState) -> dict[str, Any]:
        body: dict[str, Any] = {"id": op.op_id, "name": op.op_id, "status": op.status, "startTime": fmt_time(op.start)}
        if op.end is not None:
            body["endTime"] = fmt_time(op.end)
        if op.status == "Succeeded" and op.job_id:
            body["properties"] = {"objectType": "OperationStatusJobExtendedInfo", "jobId": op.job_id}
        if op.status == "Failed" and op.error:
            body["error"] = dict(op.error)
        return body


def _parse_or(value: str | None, default: datetime) -> datetime:
    if value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            pass
    return default


__all__ = [
    "BACKUP_REQUEST_TYPE",
    "RESTORE_REQUEST_TYPES",
    "CancelOperationState",
    "ItemState",
    "JobState",
    "OperationState",
    "RecoveryPointState",
    "TokenState",
    "VaultState",
    "fmt_dotnet_time",
    "fmt_iso_duration",
    "fmt_time",
    "fmt_timespan",
    "utc_now",
]
