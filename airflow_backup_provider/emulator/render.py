"""JSON shapes of the emulator's resources (vault, protected items, recovery points, jobs, operations), shaped like
the spec examples (``tests/spec/bms.json`` and ``tests/spec/examples``), and the service's date/duration formats.

Pure functions of the state in :mod:`.state`; callers hold the vault's lock.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from .state import NEVER_BACKED_UP, ItemState, JobState, OperationState, RecoveryPointState, VaultState, stable_int

JOBS_TYPE = "Microsoft.RecoveryServices/vaults/backupJobs"
ITEMS_TYPE = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems"
RPS_TYPE = "Microsoft.RecoveryServices/vaults/backupFabrics/protectionContainers/protectedItems/recoveryPoints"
VAULT_TYPE = "Microsoft.RecoveryServices/vaults"
MIN_DATETIME = "0001-01-01T00:00:00Z"  # what the service sends for task times that have not happened yet
FIRST_TASK_SHARE = 0.3  # the first task (snapshot / prepare) takes 30 % of a job

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
    "DisableBackup": ("Disable backup", "Stop protection"),
}


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


def fmt_sentinel(value: datetime) -> str:
    """``lastBackupTime`` as the service prints it: the never-backed-up sentinel without fraction digits."""
    return "2001-01-01T00:00:00Z" if value == NEVER_BACKED_UP else fmt_time(value)


def fmt_dotnet_time(value: datetime) -> str:
    """``M/d/yyyy h:mm:ss tt`` — how ARM prints times inside ExpiredAuthenticationToken messages."""
    value = value.astimezone(timezone.utc)
    hour12 = value.hour % 12 or 12
    ampm = "AM" if value.hour < 12 else "PM"
    return f"{value.month}/{value.day}/{value.year} {hour12}:{value.minute:02d}:{value.second:02d} {ampm}"


def render_vault(vault: VaultState) -> dict[str, Any]:
    return {
        "id": vault.vault_path,
        "name": vault.vault_name,
        "type": VAULT_TYPE,
        "location": vault.location,
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


def render_item(vault: VaultState, item: ItemState) -> dict[str, Any]:
    """A ProtectedItemResource: AzureIaaSComputeVMProtectedItem, AzureFileshareProtectedItem or
    AzureVmWorkloadSQLDatabaseProtectedItem (``lastBackupStatus`` a string for VMs and file shares, the
    LastBackupStatus enum for workloads; ``lastBackupTime`` is the 2001-01-01 sentinel when never backed up)."""
    seed = item.seed
    rps = item.recovery_points
    last_backup = item.last_backup_time or NEVER_BACKED_UP
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
        "policyId": f"{vault.vault_path}/backupPolicies/{policy_name}",
        "policyName": policy_name,
        "lastRecoveryPoint": fmt_time(rps[-1].time) if rps else None,
        "isScheduledForDeferredDelete": False,
        "isArchiveEnabled": False,
        "softDeleteRetentionPeriodInDays": 14,
        "vaultId": vault.vault_path,
        "friendlyName": seed.friendly_name,
        "protectionState": item.protection_state,
        "protectionStatus": "Unhealthy" if item.last_backup_failed else "Healthy",
        "lastBackupStatus": item.last_backup_status,
        "lastBackupTime": fmt_sentinel(last_backup),
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
        extended["resourceStateSyncTime"] = fmt_time(last_backup)
    else:
        server = seed.container_name.split(";")[-1]
        props.update(
            {
                "serverName": server,
                "parentName": "MSSQLSERVER",
                "parentType": "AzureVmWorkloadSQLInstance",
                "protectedItemDataSourceId": item.protected_item_data_id,
                "protectedItemHealthStatus": (
                    "IRPending"
                    if item.last_backup_time is None
                    else "Unhealthy"
                    if item.last_backup_failed
                    else "Healthy"
                ),
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
    return {"id": vault.item_path(item), "name": seed.protected_item_name, "type": ITEMS_TYPE, "properties": props}


def render_recovery_point(vault: VaultState, item: ItemState, rp: RecoveryPointState) -> dict[str, Any]:
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
        "id": f"{vault.item_path(item)}/recoveryPoints/{rp.rp_id}",
        "name": rp.rp_id,
        "type": RPS_TYPE,
        "properties": props,
    }


# ---- rendering: jobs ---------------------------------------------------------------------------------------------


def render_job(vault: VaultState, job: JobState, now: datetime) -> dict[str, Any]:
    """A JobResource; the Job shape follows the workload: AzureIaaSVMJob / AzureStorageJob / AzureWorkloadJob."""
    seed = job.item.seed
    workload = seed.workload
    status = job.status
    in_progress = status == "InProgress"
    elapsed = job.elapsed(now)
    wall = ((job.end or now) - job.start).total_seconds()
    fraction = 1.0 if job.duration <= 0 else min(1.0, elapsed / job.duration)
    tasks = _render_tasks(vault, job, elapsed)
    size_mb = stable_int(job.job_id, 200, 4000)

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
        "id": f"{vault.vault_path_capital}/backupJobs/{job.job_id}",
        "name": job.job_id,
        "type": JOBS_TYPE,
        "properties": props,
    }


def _render_tasks(vault: VaultState, job: JobState, elapsed: float) -> list[dict[str, Any]]:
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
