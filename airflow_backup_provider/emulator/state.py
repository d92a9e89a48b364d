"""In-memory model of a subscription's Recovery Services vaults: protected items, jobs, async operations, recovery
points. Rendering to JSON lives in :mod:`.render`.

Concurrency: each :class:`VaultState` has its own lock; the ARM handlers hold the lock of the one vault a request
names (never a global one), the :class:`Fleet` lock only guards adding vaults and the job sequence.

Time: jobs progress lazily from the wall clock. A job started at ``start`` with a *virtual* duration ``D`` runs
``D / time_scale`` wall seconds; :meth:`VaultState.advance` finalizes jobs whose time is up (exactly once — that is
where recovery points are added and the item's last-backup fields change). It pops a due-time heap, so a request
costs O(jobs finishing now), not O(jobs). Jobs are kept sorted by (start, creation number): a page of a listing is a
bisect plus a walk of one page.

Over 500 lines for a reason: a vault's indexes (sort order, due-time heap, running jobs, each item's running backup)
change together in :meth:`VaultState.add_job` / :meth:`VaultState._finalize`; splitting them apart would spread one
invariant over several modules.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .config import (
    RESOURCE_GROUP,
    SUBSCRIPTION_ID,
    VAULT_NAME,
    ItemBehavior,
    JobView,
    SeededItem,
)

NON_TERMINAL_JOB_STATUSES = frozenset({"InProgress", "Cancelling"})
NEVER_BACKED_UP = datetime(2001, 1, 1, tzinfo=timezone.utc)  # the service's lastBackupTime of a never-backed-up item
WORKLOADS = ("VM", "AzureFileShare", "SQLDataBase")

JOB_TYPE = {"VM": "AzureIaaSVMJob", "AzureFileShare": "AzureStorageJob", "SQLDataBase": "AzureWorkloadJob"}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def stable_int(text: str, low: int, high: int) -> int:
    """A number in ``[low, high)`` derived from ``text`` (stable across runs).

    :param text: the seed text.
    :param low: the lower bound.
    :param high: the upper bound (exclusive).
    """
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
    last_backup_time: datetime | None  # None: never backed up (rendered as the 2001-01-01 sentinel)
    last_backup_failed: bool = False
    protection_state: str = "Protected"
    recovery_points: list[RecoveryPointState] = field(default_factory=list)  # oldest first
    active_backup: JobState | None = None

    @property
    def workload(self) -> str:
        return self.seed.workload


@dataclass(eq=False)
class JobState:
    job_id: str
    item: ItemState
    operation: str  # Backup | Restore | ConfigureBackup | DisableBackup
    start: datetime
    duration: float  # wall-clock seconds
    outcome: str
    is_user_triggered: bool
    activity_id: str
    seq: int
    vault_name: str = VAULT_NAME
    resource_group: str = RESOURCE_GROUP
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

    @property
    def key(self) -> tuple[datetime, int]:
        """Sort key of listings: newest first means descending (start, seq)."""
        return (self.start, self.seq)

    @property
    def due(self) -> datetime:
        """When the job turns terminal (after a cancel request: when the cancel completes)."""
        if self.cancel_requested_at is not None:
            return self.cancel_requested_at + timedelta(seconds=self.cancel_duration)
        return self.start + timedelta(seconds=self.duration)

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
            vault_name=self.vault_name,
            resource_group=self.resource_group,
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


# --------------------------------------------------------------------------------------------------------------------
# One vault
# --------------------------------------------------------------------------------------------------------------------


class VaultState:
    """One vault and everything that happens to it. Callers hold :attr:`lock` while they read or change it."""

    def __init__(self, fleet: Fleet, resource_group: str, name: str, location: str) -> None:
        self.fleet = fleet
        self.lock = threading.RLock()
        self.subscription_id = SUBSCRIPTION_ID
        self.resource_group = resource_group
        self.vault_name = name
        self.location = location
        self.items: dict[str, ItemState] = {}  # by lower-cased protected item name
        self.jobs: dict[str, JobState] = {}  # by lower-cased job id
        self.operations: dict[str, OperationState] = {}
        self.cancel_operations: dict[str, CancelOperationState] = {}
        self._order: list[tuple[datetime, int]] = []  # sort keys of all jobs, ascending
        self._by_key: dict[tuple[datetime, int], JobState] = {}
        self._active: dict[str, JobState] = {}  # non-terminal jobs by lower-cased id
        self._active_order: list[tuple[datetime, int]] = []  # their sort keys, ascending
        self._due: list[tuple[datetime, int, JobState]] = []  # heap of (due, seq, job); stale entries are skipped
        self._rng = random.Random()

    # ---- identity ----------------------------------------------------------------------------------------------------

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

    def new_rp_id(self) -> str:
        return str(self._rng.randrange(10**13, 10**15))

    # ---- items -------------------------------------------------------------------------------------------------------

    def add_item(
        self,
        seed: SeededItem,
        *,
        last_backup_time: datetime | None,
        last_backup_status: str | None = None,
        protection_state: str = "Protected",
        last_backup_failed: bool = False,
        recovery_points: list[datetime] | None = None,
    ) -> ItemState:
        """Register a protected item.

        :param seed: its names.
        :param last_backup_time: its last backup, or None for never backed up.
        :param last_backup_status: default: ``Completed`` (VM) / ``Healthy`` (others), ``""`` / ``IRPending`` when
            never backed up.
        :param protection_state: the ProtectionState enum value.
        :param last_backup_failed: whether that last backup failed.
        :param recovery_points: times of its recovery points (oldest first); default one at ``last_backup_time``.
        :raises ValueError: when the vault already protects an item of that name.
        """
        key = seed.protected_item_name.lower()
        if key in self.items:
            raise ValueError(f"vault {self.vault_name!r} already has protected item {seed.protected_item_name!r}")
        if last_backup_status is None:
            if last_backup_time is None:
                last_backup_status = "IRPending" if seed.workload == "SQLDataBase" else ""
            elif seed.workload == "VM":
                last_backup_status = "Failed" if last_backup_failed else "Completed"
            else:
                last_backup_status = "Unhealthy" if last_backup_failed else "Healthy"
        item = ItemState(
            seed=seed,
            behavior=ItemBehavior(),
            protected_item_data_id=str(stable_int(self.vault_name + seed.protected_item_name, 10**17, 10**18)),
            last_backup_status=last_backup_status,
            last_backup_time=last_backup_time,
            last_backup_failed=last_backup_failed,
            protection_state=protection_state,
        )
        times = recovery_points if recovery_points is not None else [last_backup_time] if last_backup_time else []
        for index, when in enumerate(times):
            rp_id = str(stable_int(f"rp:{self.vault_name}:{seed.protected_item_name}:{index}", 10**13, 10**14))
            item.recovery_points.append(RecoveryPointState(rp_id=rp_id, time=when))
        self.items[key] = item
        return item

    def find_item(self, container_name: str, item_name: str) -> ItemState | None:
        """Case-insensitive lookup of a (container, item) pair, as the service does."""
        item = self.items.get(item_name.lower())
        if item is None or item.seed.container_name.lower() != container_name.lower():
            return None
        return item

    def item_by_name(self, item_name: str) -> ItemState | None:
        return self.items.get(item_name.lower())

    # ---- jobs --------------------------------------------------------------------------------------------------------

    def add_job(
        self,
        item: ItemState,
        operation: str,
        *,
        start: datetime,
        duration: float,
        outcome: str,
        activity_id: str,
        is_user_triggered: bool = True,
        job_id: str | None = None,
        backup_type: str | None = None,
        restore_info: dict[str, str] | None = None,
        finished: bool = False,
    ) -> JobState:
        """Create a job (``finished``: already terminal with ``outcome``, without side effects on the item).

        :param duration: wall-clock seconds.
        """
        job = JobState(
            job_id=job_id or str(uuid.uuid4()),
            item=item,
            operation=operation,
            start=start,
            duration=duration,
            outcome=outcome,
            is_user_triggered=is_user_triggered,
            activity_id=activity_id,
            seq=self.fleet.next_seq(),
            vault_name=self.vault_name,
            resource_group=self.resource_group,
            backup_type=backup_type,
            restore_info=dict(restore_info or {}),
        )
        key = job.job_id.lower()
        self.jobs[key] = job
        bisect.insort(self._order, job.key)
        self._by_key[job.key] = job
        if finished:
            job.final_status = outcome
            job.end = start + timedelta(seconds=duration)
        else:
            self._active[key] = job
            bisect.insort(self._active_order, job.key)
            heapq.heappush(self._due, (job.due, job.seq, job))
            if operation == "Backup":
                item.active_backup = job
        return job

    def create_job(
        self,
        item: ItemState,
        operation: str,
        *,
        now: datetime,
        activity_id: str,
        time_scale: float,
        default_duration: float,
        backup_type: str | None = None,
        restore_info: dict[str, str] | None = None,
    ) -> JobState:
        """A user-triggered job that runs as the item's behaviour says."""
        behavior = item.behavior
        virtual = default_duration if behavior.duration_seconds is None else behavior.duration_seconds
        return self.add_job(
            item,
            operation,
            start=now,
            duration=virtual / time_scale,
            outcome=behavior.outcome,
            activity_id=activity_id,
            backup_type=backup_type,
            restore_info=restore_info,
        )

    def job(self, job_id: str) -> JobState | None:
        return self.jobs.get(job_id.lower())

    def cancel(self, job: JobState, now: datetime, cancel_duration: float) -> None:
        """Start cancelling an InProgress job: it stays ``Cancelling`` for ``cancel_duration`` wall seconds."""
        job.cancel_requested_at = now
        job.cancel_duration = cancel_duration
        heapq.heappush(self._due, (job.due, job.seq, job))

    def finish(self, job: JobState, now: datetime, outcome: str) -> None:
        """End a non-terminal job now with ``outcome`` (admin steering), with the usual side effects."""
        if job.final_status:
            return
        job.outcome = outcome
        job.cancel_requested_at = None
        job.duration = max(0.0, (now - job.start).total_seconds())
        self._finalize(job, outcome, now)

    def advance(self, now: datetime) -> None:
        """Finalize every job whose (cancel) time is up; side effects happen exactly once here."""
        while self._due and self._due[0][0] <= now:
            due, _, job = heapq.heappop(self._due)
            if job.final_status or due != job.due:
                continue  # already final, or a stale entry (the job was cancelled after it was pushed)
            if job.cancel_requested_at is not None:
                self._finalize(job, "Cancelled", due)
            else:
                self._finalize(job, job.outcome, due)

    def _finalize(self, job: JobState, status: str, at: datetime) -> None:
        job.final_status = status
        job.end = at
        if self._active.pop(job.job_id.lower(), None) is not None:
            index = bisect.bisect_left(self._active_order, job.key)
            if index < len(self._active_order) and self._active_order[index] == job.key:
                del self._active_order[index]
        item = job.item
        if item.active_backup is job:
            item.active_backup = None
        if status == "Cancelled" or job.operation != "Backup":
            return
        succeeded = status in ("Completed", "CompletedWithWarnings")
        if item.workload == "VM":
            item.last_backup_status = status
        else:
            item.last_backup_status = "Healthy" if succeeded else "Unhealthy"
        item.last_backup_time = at
        item.last_backup_failed = not succeeded
        if item.protection_state == "IRPending" and succeeded:
            item.protection_state = "Protected"
        if succeeded:
            rp_type = job.backup_type or "Full"
            if rp_type not in ("Full", "Log", "Differential", "Incremental", "SnapshotFull", "SnapshotCopyOnlyFull"):
                rp_type = "Full"  # CopyOnlyFull etc. surface as Full points
            item.recovery_points.append(RecoveryPointState(rp_id=self.new_rp_id(), time=at, backup_type=rp_type))

    def active_backup_job(self, item: ItemState) -> JobState | None:
        job = item.active_backup
        return job if job is not None and job.status in NON_TERMINAL_JOB_STATUSES else None

    def iter_jobs_newest_first(
        self,
        *,
        before: tuple[datetime, int] | None = None,
        since: datetime | None = None,
        active_only: bool = False,
    ) -> Iterator[JobState]:
        """Jobs newest first, strictly older than ``before`` and starting at or after ``since``.

        Walks only what the caller consumes (a page), not every job; ``active_only`` walks the non-terminal jobs.
        The caller holds :attr:`lock` while it iterates.
        """
        order = self._active_order if active_only else self._order
        index = len(order) if before is None else bisect.bisect_left(order, before)
        floor = 0 if since is None else bisect.bisect_left(order, (since, -1))
        while index > floor:
            index -= 1
            yield self._by_key[order[index]]

    def sorted_jobs(self) -> list[JobState]:
        """Newest first (by start time, then creation order)."""
        return list(self.iter_jobs_newest_first())

    @property
    def job_count(self) -> int:
        return len(self.jobs)

    @property
    def active_job_count(self) -> int:
        return len(self._active)


# --------------------------------------------------------------------------------------------------------------------
# The subscription: vaults by resource group
# --------------------------------------------------------------------------------------------------------------------


class Fleet:
    """The emulated subscription: its vaults, keyed by (resource group, vault name), both case-insensitive."""

    def __init__(self, location: str) -> None:
        self.location = location
        self.subscription_id = SUBSCRIPTION_ID
        self.lock = threading.Lock()
        self.vaults: dict[tuple[str, str], VaultState] = {}
        self.resource_groups: set[str] = set()
        self._seq = 0

    def next_seq(self) -> int:
        with self.lock:
            self._seq += 1
            return self._seq

    @property
    def last_seq(self) -> int:
        return self._seq

    def vault(self, resource_group: str, name: str) -> VaultState | None:
        return self.vaults.get((resource_group.lower(), name.lower()))

    def add_vault(self, resource_group: str, name: str) -> VaultState:
        """Create an empty vault (and its resource group).

        :raises ValueError: for an existing vault or a name the service would refuse.
        """
        for label, value in (("resource_group", resource_group), ("vault name", name)):
            if not value or any(c in value for c in "/\\?#;% ") or len(value) > 90:
                raise ValueError(f"{label} {value!r} is not a valid name")
        key = (resource_group.lower(), name.lower())
        with self.lock:
            if key in self.vaults:
                raise ValueError(f"vault {resource_group}/{name} already exists")
            vault = VaultState(self, resource_group, name, self.location)
            self.vaults[key] = vault
            self.resource_groups.add(resource_group.lower())
        return vault

    def all_vaults(self) -> list[VaultState]:
        with self.lock:
            return list(self.vaults.values())

    def find_job(self, job_id: str) -> tuple[VaultState, JobState] | None:
        for vault in self.all_vaults():
            job = vault.job(job_id)
            if job is not None:
                return vault, job
        return None


__all__ = [
    "NEVER_BACKED_UP",
    "WORKLOADS",
    "CancelOperationState",
    "Fleet",
    "ItemState",
    "JobState",
    "OperationState",
    "RecoveryPointState",
    "VaultState",
    "stable_int",
    "utc_now",
]
