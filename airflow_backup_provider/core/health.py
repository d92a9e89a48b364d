"""Pure classification behind :class:`~airflow_backup_provider.operators.health.BackupHealthCheckOperator`.

Every protected item lands in exactly one category, checked in this order:

1. ``protection_stopped``: ``protectionState`` ``ProtectionStopped`` / ``ProtectionPaused`` / ``BackupsSuspended``
   (no more scheduled backups).
2. ``protection_error``: ``protectionState`` ``ProtectionError`` / ``Invalid``.
3. ``failed``: its latest backup job of the lookback window ended ``Failed`` / ``Cancelled`` / ``Invalid``.
4. ``stale``: its last successful backup (``lastRecoveryPoint``, else a good ``lastBackupTime``) is older than
   ``max_age``, or it was never backed up (the ``2001-01-01`` sentinel, ``IRPending``).
5. ``healthy``.

``CompletedWithWarnings`` jobs of the window are listed under ``warnings`` (an item there is also in its category).
No Airflow and no I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from airflow_backup_provider.core.verification import (
    PROTECTION_ERROR_STATES,
    PROTECTION_STOPPED_STATES,
    last_successful_backup_time,
    never_backed_up,
)
from airflow_backup_provider.exceptions import AzureBackupConfigError
from airflow_backup_provider.protocol import BackupJob, BackupJobStatus, ProtectedItem, job_matches_item, require_name

CATEGORIES = ("healthy", "stale", "failed", "protection_stopped", "protection_error")
UNHEALTHY = ("stale", "failed", "protection_stopped", "protection_error")


def parse_vault_spec(value: Any) -> tuple[str, str]:
    """``"resource_group/vault"`` → ``(resource_group, vault)``.

    :raises AzureBackupConfigError: naming ``vaults`` and the bad value.
    """
    if not isinstance(value, str) or value.count("/") != 1:
        raise AzureBackupConfigError("vaults", value, 'each entry must be "resource_group/vault"')
    rg, vault = (part.strip() for part in value.split("/"))
    if not rg or not vault:
        raise AzureBackupConfigError("vaults", value, 'each entry must be "resource_group/vault"')
    return require_name("resource_group_name", rg), require_name("vault_name", vault)


@dataclass(frozen=True)
class ItemVerdict:
    category: str
    reason: str
    job: BackupJob | None = None


def latest_job(item: ProtectedItem, jobs: Iterable[BackupJob]) -> BackupJob | None:
    """The newest backup job of ``item`` (by start time) among ``jobs``."""
    mine = [j for j in jobs if (j.operation in (None, "Backup")) and job_matches_item(j, item)]
    if not mine:
        return None
    return max(mine, key=lambda j: (j.start_time is not None, j.start_time or datetime.min))


def _fmt(value: datetime | None) -> str:
    return value.isoformat() if value else "never"


def classify_item(item: ProtectedItem, jobs: Sequence[BackupJob], *, now: datetime, max_age: timedelta) -> ItemVerdict:
    """The one category of ``item`` and a readable reason (``jobs``: the vault's backup jobs of the window)."""
    state = item.protection_state
    if state in PROTECTION_STOPPED_STATES:
        return ItemVerdict("protection_stopped", f"protectionState is {state}: no scheduled backups")
    if state in PROTECTION_ERROR_STATES:
        return ItemVerdict("protection_error", f"protectionState is {state}")
    job = latest_job(item, jobs)
    if job is not None and job.status in BackupJobStatus.FAILURE_STATUSES:
        return ItemVerdict(
            "failed",
            f"latest backup job {job.job_id} (started {_fmt(job.start_time)}) ended {job.status}: "
            f"{job.describe_errors()}",
            job,
        )
    last_good = last_successful_backup_time(item)
    if never_backed_up(item) and last_good is None:
        return ItemVerdict("stale", "never backed up", job)
    if last_good is None:
        return ItemVerdict(
            "stale", f"no successful backup (lastBackupStatus {item.last_backup_status or '(empty)'})", job
        )
    age = now - last_good
    if age > max_age:
        hours = age.total_seconds() / 3600
        return ItemVerdict(
            "stale",
            f"last successful backup {last_good.isoformat()} is {hours:.1f} h old "
            f"(max_age {max_age.total_seconds() / 3600:g} h)",
            job,
        )
    return ItemVerdict("healthy", f"last successful backup {last_good.isoformat()}", job)


def item_entry(vault: str, item: ProtectedItem, reason: str, job: BackupJob | None = None) -> dict[str, Any]:
    """One report entry (JSON-serialisable)."""
    entry: dict[str, Any] = {
        "vault": vault,
        "item": item.friendly_name or item.protected_item_name,
        "container_name": item.container_name,
        "protected_item_name": item.protected_item_name,
        "last_backup_time": item.last_backup_time.isoformat() if item.last_backup_time else None,
        "last_backup_status": item.last_backup_status,
        "reason": reason,
    }
    if job is not None:
        entry["job_id"] = job.job_id
    return entry


@dataclass
class HealthReportBuilder:
    """Collects the verdicts of every vault into the operator's report."""

    checked_at: datetime
    max_age: timedelta
    lookback: timedelta
    vaults: list[str] = field(default_factory=list)
    vault_errors: list[dict[str, Any]] = field(default_factory=list)
    entries: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})
    warnings: list[dict[str, Any]] = field(default_factory=list)
    items: int = 0
    jobs: int = 0

    def add_vault(self, vault: str, items: Sequence[ProtectedItem], jobs: Sequence[BackupJob]) -> None:
        self.vaults.append(vault)
        self.items += len(items)
        self.jobs += len(jobs)
        for item in items:
            verdict = classify_item(item, jobs, now=self.checked_at, max_age=self.max_age)
            self.entries[verdict.category].append(item_entry(vault, item, verdict.reason, verdict.job))
            for job in jobs:
                if job.status == BackupJobStatus.COMPLETED_WITH_WARNINGS and job_matches_item(job, item):
                    self.warnings.append(
                        item_entry(
                            vault, item, f"job {job.job_id} completed with warnings: {job.describe_errors()}", job
                        )
                    )

    def add_vault_error(self, vault: str, error: BaseException) -> None:
        self.vaults.append(vault)
        self.vault_errors.append({"vault": vault, "error": f"{type(error).__name__}: {error}"})

    def build(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "max_age_hours": self.max_age.total_seconds() / 3600,
            "lookback_hours": self.lookback.total_seconds() / 3600,
            "vaults": list(self.vaults),
            "items": self.items,
            "jobs": self.jobs,
            **{c: list(v) for c, v in self.entries.items()},
            "warnings": list(self.warnings),
            "vault_errors": list(self.vault_errors),
            "ok": is_healthy_report({**self.entries, "vault_errors": self.vault_errors}),
        }


def is_healthy_report(report: Mapping[str, Any]) -> bool:
    """No unhealthy item and no unreadable vault."""
    return not any(report.get(c) for c in UNHEALTHY) and not report.get("vault_errors")


def health_failure_message(report: Mapping[str, Any], *, first: int = 5) -> str:
    """Counts per category and the first items with their reasons."""
    counts = ", ".join(f"{len(report.get(c) or [])} {c}" for c in UNHEALTHY)
    parts = [
        f"Azure Backup health check: {report.get('items', 0)} items in {len(report.get('vaults') or [])} vault(s): "
        f"{counts}, {len(report.get('vault_errors') or [])} unreadable vault(s)"
    ]
    listed = [e for c in UNHEALTHY for e in report.get(c) or []]
    parts += [f"{e['vault']} {e['item']}: {e['reason']}" for e in listed[:first]]
    if len(listed) > first:
        parts.append(f"... and {len(listed) - first} more")
    parts += [f"vault {e['vault']}: {e['error']}" for e in report.get("vault_errors") or []]
    return "; ".join(parts)
