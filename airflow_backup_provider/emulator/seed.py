"""Seed data: names of new protected items as the service spells them (:func:`make_seed`), the seeded demo vault,
and the fleets and health-check states users ask for.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from .config import (
    FILE_SHARE_ITEM,
    RESOURCE_GROUP,
    SEEDED_ITEMS,
    SQL_ITEM,
    SUBSCRIPTION_ID,
    VAULT_NAME,
    VM_ITEM,
    SeededItem,
)
from .state import WORKLOADS, Fleet, VaultState, stable_int

_KIND_ALIASES = {
    "vm": "VM",
    "azureiaasvm": "VM",
    "iaasvm": "VM",
    "azurefileshare": "AzureFileShare",
    "fileshare": "AzureFileShare",
    "file_share": "AzureFileShare",
    "azurestorage": "AzureFileShare",
    "sqldatabase": "SQLDataBase",
    "sql": "SQLDataBase",
    "azureworkload": "SQLDataBase",
}
_BACKUP_MANAGEMENT_TYPE = {"VM": "AzureIaasVM", "AzureFileShare": "AzureStorage", "SQLDataBase": "AzureWorkload"}


def workload_of(kind: str) -> str:
    """The workload (``VM`` / ``AzureFileShare`` / ``SQLDataBase``) a kind names; aliases such as ``vm``,
    ``file_share``, ``sql`` or a backup management type are accepted.

    :param kind: the kind as given.
    :raises ValueError: for an unknown kind.
    """
    workload = _KIND_ALIASES.get(kind.strip().lower().replace("-", "_"))
    if workload is None:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(WORKLOADS)}")
    return workload


def make_seed(
    kind: str,
    name: str,
    *,
    resource_group: str = "rg-fleet",
    storage_account: str = "stfleet01",
    server: str | None = None,
) -> SeededItem:
    """Names of a new protected item, spelled as the service spells them for its workload.

    :param kind: ``VM``, ``AzureFileShare`` or ``SQLDataBase`` (or an alias, see :func:`workload_of`).
    :param name: the friendly name: VM name, file share name or database name.
    :param resource_group: resource group of the protected resource (not of the vault).
    :param storage_account: storage account of a file share.
    :param server: the SQL server VM of a database (default ``vm-sql-{name}``).
    """
    workload = workload_of(kind)
    if not name or any(c in name for c in ";/\\?#") or name.strip() != name:
        raise ValueError(f"item name {name!r} must be non-empty without ';', '/', '\\\\', '?', '#' or edge spaces")
    base = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{resource_group}/providers"
    if workload == "VM":
        return SeededItem(
            container_name=f"IaasVMContainer;iaasvmcontainerv2;{resource_group};{name}",
            protected_item_name=f"VM;iaasvmcontainerv2;{resource_group};{name}",
            friendly_name=name,
            backup_management_type="AzureIaasVM",
            workload="VM",
            source_resource_id=f"{base}/Microsoft.Compute/virtualMachines/{name}",
        )
    if workload == "AzureFileShare":
        return SeededItem(
            container_name=f"StorageContainer;Storage;{resource_group};{storage_account}",
            protected_item_name=f"AzureFileShare;{name}",
            friendly_name=name,
            backup_management_type="AzureStorage",
            workload="AzureFileShare",
            source_resource_id=f"{base}/Microsoft.Storage/storageAccounts/{storage_account}",
        )
    host = server or f"vm-sql-{name}"
    return SeededItem(
        container_name=f"VMAppContainer;Compute;{resource_group};{host}",
        protected_item_name=f"SQLDataBase;mssqlserver;{name}",
        friendly_name=name,
        backup_management_type=_BACKUP_MANAGEMENT_TYPE["SQLDataBase"],
        workload="SQLDataBase",
        source_resource_id=f"{base}/Microsoft.Compute/virtualMachines/{host}",
    )


def _seed_job_id(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"azure-backup-emulator/{name}"))


def seed_demo_vault(fleet: Fleet, now: datetime) -> VaultState:
    """The seeded vault: three protected items, one old recovery point each, and a short job history."""
    vault = fleet.add_vault(RESOURCE_GROUP, VAULT_NAME)
    day = timedelta(days=1)
    for seed_item in SEEDED_ITEMS:
        last = (now - day).replace(hour=22, minute=30, second=0, microsecond=0)
        item = vault.add_item(seed_item, last_backup_time=last)
        # keep the ids of earlier versions: stable across runs and independent of the vault
        item.protected_item_data_id = str(stable_int(seed_item.protected_item_name, 10**17, 10**18))
        item.recovery_points[0].rp_id = str(stable_int("rp:" + seed_item.protected_item_name, 10**13, 10**14))

    def seed_job(name: str, seed: SeededItem, operation: str, *, start: datetime, minutes: float, outcome: str) -> None:
        vault.add_job(
            vault.items[seed.protected_item_name.lower()],
            operation,
            start=start,
            duration=minutes * 60,
            outcome=outcome,
            activity_id=_seed_job_id(f"activity/{name}"),
            is_user_triggered=False,
            job_id=_seed_job_id(name),
            backup_type="Full" if seed.workload == "SQLDataBase" and operation == "Backup" else None,
            finished=True,
        )

    for index, seed_item in enumerate(SEEDED_ITEMS):
        state = vault.items[seed_item.protected_item_name.lower()]
        assert state.last_backup_time is not None
        configured = now - 30 * day + index * timedelta(minutes=7)
        seed_job(f"configure-{index}", seed_item, "ConfigureBackup", start=configured, minutes=1.5, outcome="Completed")
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
    return vault


__all__ = ["make_seed", "seed_demo_vault", "workload_of"]
