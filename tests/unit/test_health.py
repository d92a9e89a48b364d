"""Pure health classification (``airflow_backup_provider.core.health``) on spec-shaped bodies."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_backup_provider.core import health
from airflow_backup_provider.exceptions import AzureBackupConfigError
from tests.unit.test_verification import job, share_item, vm_item, workload_item

NOW = datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)
MAX_AGE = timedelta(hours=26)
RECENT = "2026-11-30T22:30:00Z"


def vm_job(status: str, start: str = "2026-12-01T01:00:00Z") -> Any:
    """A job of the spec example item ``iaasvm-1`` (GetJobDetails example, renamed)."""
    j = job(status, start=start)
    raw = dict(j.raw)
    raw["properties"] = {
        **raw["properties"],
        "entityFriendlyName": "iaasvm-1",
        "containerName": "iaasvmcontainer;iaasvm-rg;iaasvm-1",
    }
    from airflow_backup_provider.protocol import parse_job

    return parse_job(raw)


def classify(item: Any, jobs: list[Any] | None = None) -> health.ItemVerdict:
    return health.classify_item(item, jobs or [], now=NOW, max_age=MAX_AGE)


def test_recent_item_is_healthy() -> None:
    verdict = classify(vm_item(lastRecoveryPoint=RECENT, lastBackupTime=RECENT), [vm_job("Completed")])
    assert verdict.category == "healthy" and "2026-11-30T22:30:00+00:00" in verdict.reason


@pytest.mark.parametrize(
    ("item", "category", "phrase"),
    [
        (vm_item(protectionState="ProtectionStopped"), "protection_stopped", "ProtectionStopped"),
        (vm_item(protectionState="BackupsSuspended"), "protection_stopped", "BackupsSuspended"),
        (vm_item(protectionState="ProtectionError"), "protection_error", "ProtectionError"),
        # The spec example's item: last recovery point in 2017.
        (vm_item(), "stale", "h old (max_age 26 h)"),
        (
            vm_item(
                protectionState="IRPending",
                lastBackupStatus="",
                lastBackupTime="2001-01-01T00:00:00Z",
                lastRecoveryPoint=None,
            ),
            "stale",
            "never backed up",
        ),
        (workload_item(lastBackupStatus="Unhealthy", lastRecoveryPoint=None), "stale", "no successful backup"),
    ],
)
def test_categories(item: Any, category: str, phrase: str) -> None:
    verdict = classify(item)
    assert verdict.category == category and phrase in verdict.reason


def test_latest_job_failed_wins_over_stale_and_older_successes() -> None:
    item = vm_item(lastRecoveryPoint=RECENT, lastBackupTime=RECENT)
    jobs = [vm_job("Completed", "2026-12-01T00:00:00Z"), vm_job("Failed", "2026-12-01T02:00:00Z")]
    verdict = classify(item, jobs)
    assert verdict.category == "failed" and "ended Failed: error 400002: VM agent unreachable" in verdict.reason
    # A later success clears it.
    later = [*jobs, vm_job("Completed", "2026-12-01T03:00:00Z")]
    assert classify(item, later).category == "healthy"
    # Stopped protection still comes first.
    assert classify(vm_item(protectionState="ProtectionStopped"), jobs).category == "protection_stopped"


def test_jobs_of_other_items_do_not_count() -> None:
    other = job("Failed")  # the GetJobDetails example's "testvm"
    assert classify(vm_item(lastRecoveryPoint=RECENT), [other]).category == "healthy"


def test_report_builder_puts_each_item_in_one_category_and_lists_warnings() -> None:
    builder = health.HealthReportBuilder(checked_at=NOW, max_age=MAX_AGE, lookback=timedelta(hours=24))
    good = vm_item(lastRecoveryPoint=RECENT, lastBackupTime=RECENT)
    builder.add_vault("rg/v1", [good, share_item()], [vm_job("CompletedWithWarnings")])
    builder.add_vault_error("rg/v2", RuntimeError("connection refused"))
    report = builder.build()
    json.dumps(report)
    assert report["vaults"] == ["rg/v1", "rg/v2"] and report["items"] == 2
    assert [e["item"] for e in report["healthy"]] == ["iaasvm-1", "share-reports"]
    assert [e["item"] for e in report["warnings"]] == ["iaasvm-1"]
    assert report["warnings"][0]["job_id"] and "completed with warnings" in report["warnings"][0]["reason"]
    assert report["vault_errors"] == [{"vault": "rg/v2", "error": "RuntimeError: connection refused"}]
    assert report["ok"] is False
    entry = report["healthy"][0]
    assert set(entry) >= {"vault", "item", "container_name", "protected_item_name", "last_backup_time",
                          "last_backup_status", "reason"}  # fmt: skip
    message = health.health_failure_message(report)
    assert "2 items in 2 vault(s): 0 stale, 0 failed" in message and "vault rg/v2: RuntimeError" in message


def test_failure_message_names_the_first_items() -> None:
    report = {
        "items": 7,
        "vaults": ["rg/v"],
        "stale": [{"vault": "rg/v", "item": f"vm{i}", "reason": "never backed up"} for i in range(7)],
    }
    message = health.health_failure_message(report, first=3)
    assert "7 stale" in message and "rg/v vm2: never backed up" in message and "vm3" not in message
    assert "... and 4 more" in message


@pytest.mark.parametrize("value", ["rg", "rg/", "/v", "a/b/c", 3, None])
def test_vault_spec_errors_name_the_field(value: Any) -> None:
    with pytest.raises(AzureBackupConfigError, match=r"^vaults="):
        health.parse_vault_spec(value)


def test_vault_spec() -> None:
    assert health.parse_vault_spec(" rg-a / vault-1 ") == ("rg-a", "vault-1")
