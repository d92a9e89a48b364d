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
    EmulatorConfig,
    SeededItem,
)
from .state import WORKLOADS, Fleet, ItemState, VaultState, stable_int

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


# How old the seeded items' last backups are: older than a short max_age, well inside the nightly check's 26 h.
SEEDED_BACKUP_AGE = timedelta(hours=8)


def seed_demo_vault(fleet: Fleet, now: datetime) -> VaultState:
    """The seeded vault: three protected items, one old recovery point each, and a short job history."""
    vault = fleet.add_vault(RESOURCE_GROUP, VAULT_NAME)
    day = timedelta(days=1)
    for seed_item in SEEDED_ITEMS:
        # A fixed age, not a time of day: "yesterday 22:30" was only minutes old just after midnight.
        last = (now - SEEDED_BACKUP_AGE).replace(second=0, microsecond=0)
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


HEALTH_STATES = ("healthy", "stale", "never", "failed", "stopped")
_BACKUP_MINUTES = {"VM": 23.0, "AzureFileShare": 2.0, "SQLDataBase": 11.0}


def fleet_vault_name(index: int) -> str:
    """Name of the ``index``-th vault (1-based) of a seeded fleet: ``vault-demo``, ``vault-demo-02``, ...

    :param index: 1 for the seeded vault.
    """
    return VAULT_NAME if index == 1 else f"{VAULT_NAME}-{index:02d}"


def seed_item(
    vault: VaultState,
    seed: SeededItem,
    now: datetime,
    health: str = "healthy",
) -> ItemState:
    """Add a protected item in one of the states a health check tells apart, with matching jobs in the job list.

    - ``healthy``: last backup (Completed) 6 hours ago, one recovery point then.
    - ``stale``: last backup (Completed) 3 days ago, its recovery point and job 3 days old.
    - ``never``: never backed up: ``protectionState`` IRPending, ``lastBackupTime`` the ``2001-01-01`` sentinel,
      ``lastBackupStatus`` ``""`` (``IRPending`` for SQL), no recovery point; only a ConfigureBackup job.
    - ``failed``: a backup completed 20 hours ago (its recovery point stays), the last backup job, 2 hours ago, Failed.
    - ``stopped``: ``protectionState`` ProtectionStopped: last backup 10 days ago, then a DisableBackup job.

    :param vault: the vault (its lock held by the caller or not yet shared).
    :param seed: the item's names (:func:`make_seed`).
    :param now: the current time.
    :param health: one of :data:`HEALTH_STATES`.
    :raises ValueError: for an unknown state or a name the vault already has.
    """
    if health not in HEALTH_STATES:
        raise ValueError(f"health {health!r} is not one of {', '.join(HEALTH_STATES)}")
    hour, day = timedelta(hours=1), timedelta(days=1)
    minutes = _BACKUP_MINUTES[seed.workload]
    backup_type = "Full" if seed.workload == "SQLDataBase" else None

    def job(operation: str, end: datetime, outcome: str, length: float = minutes) -> None:
        vault.add_job(
            item,
            operation,
            start=end - timedelta(minutes=length),
            duration=length * 60,
            outcome=outcome,
            activity_id=str(uuid.uuid4()),
            is_user_triggered=False,
            backup_type=backup_type if operation == "Backup" else None,
            finished=True,
        )

    configured = now - 30 * day
    if health == "never":
        item = vault.add_item(seed, last_backup_time=None, protection_state="IRPending")
        job("ConfigureBackup", now - hour, "Completed", 1.5)
        return item
    if health == "failed":
        succeeded, failed = now - 20 * hour, now - 2 * hour
        item = vault.add_item(seed, last_backup_time=failed, last_backup_failed=True, recovery_points=[succeeded])
        job("ConfigureBackup", configured, "Completed", 1.5)
        job("Backup", succeeded, "Completed")
        job("Backup", failed, "Failed", 4.0)
        return item
    last = {"healthy": now - 6 * hour, "stale": now - 3 * day, "stopped": now - 10 * day}[health]
    state = "ProtectionStopped" if health == "stopped" else "Protected"
    item = vault.add_item(seed, last_backup_time=last, protection_state=state)
    job("ConfigureBackup", configured, "Completed", 1.5)
    job("Backup", last, "Completed")
    if health == "stopped":
        job("DisableBackup", last + day, "Completed", 1.0)
    return item


def seed_health_states(vault: VaultState, now: datetime) -> dict[str, SeededItem]:
    """The four unhealthy states a nightly check must report, one item each, in ``vault``:
    ``stale`` (VM ``vm-stale``), ``never`` (VM ``vm-never``), ``failed`` (file share ``share-failed``),
    ``stopped`` (SQL database ``db-stopped``). Returns their names by state."""
    plan = (("stale", "VM", "vm-stale"), ("never", "VM", "vm-never"), ("failed", "AzureFileShare", "share-failed"),
            ("stopped", "SQLDataBase", "db-stopped"))  # fmt: skip
    seeds: dict[str, SeededItem] = {}
    for health, kind, name in plan:
        seed = make_seed(kind, name, resource_group="rg-health", storage_account="sthealth01", server="vm-sql-health")
        seed_item(vault, seed, now, health)
        seeds[health] = seed
    return seeds


def seed_fleet(fleet: Fleet, config: EmulatorConfig, now: datetime) -> None:
    """The whole seed an :class:`EmulatorConfig` asks for: the demo vault, ``vaults - 1`` more, generated items,
    the health states, and ``jobs`` InProgress backups (round-robin over the vaults, one VM item each)."""
    vaults = [seed_demo_vault(fleet, now)]
    vaults += [fleet.add_vault(RESOURCE_GROUP, fleet_vault_name(i)) for i in range(2, config.vaults + 1)]
    for number, vault in enumerate(vaults, start=1):
        for index in range(1, config.items_per_vault + 1):
            kind = WORKLOADS[(index - 1) % len(WORKLOADS)]
            prefix = {"VM": "vm", "AzureFileShare": "share", "SQLDataBase": "db"}[kind]
            seed = make_seed(
                kind,
                f"{prefix}-{number:02d}-{index:04d}",
                resource_group=f"rg-fleet-{number:02d}",
                storage_account=f"stfleet{number:02d}",
                server=f"vm-sql-{number:02d}",
            )
            seed_item(vault, seed, now, "healthy")
    if config.health_states:
        seed_health_states(vaults[0], now)
    duration = config.jobs_duration / config.time_scale
    for index in range(config.jobs):
        vault = vaults[index % len(vaults)]
        item = vault.add_item(make_seed("VM", f"vm-load-{index:05d}", resource_group="rg-load"),
                              last_backup_time=now - timedelta(days=1))  # fmt: skip
        started = now - timedelta(seconds=index % 600)  # spread over the last ten minutes
        vault.add_job(item, "Backup", start=started, duration=duration + (now - started).total_seconds(),
                      outcome="Completed", activity_id=str(uuid.uuid4()))  # fmt: skip


__all__ = [
    "HEALTH_STATES",
    "fleet_vault_name",
    "make_seed",
    "seed_demo_vault",
    "seed_fleet",
    "seed_health_states",
    "seed_item",
    "workload_of",
]
