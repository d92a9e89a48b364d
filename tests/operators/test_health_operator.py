"""BackupHealthCheckOperator against the emulator: categories, warnings, paging, the filter format, vault errors."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from airflow_backup_provider.emulator import (
    FILE_SHARE_ITEM,
    RESOURCE_GROUP,
    SQL_ITEM,
    VAULT_NAME,
    VM_ITEM,
    Emulator,
    Fault,
    SeededItem,
)
from airflow_backup_provider.exceptions import AzureBackupConfigError, AzureBackupHealthCheckError
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.operators.health import BackupHealthCheckOperator
from airflow_backup_provider.protocol import RetryPolicy
from tests.conftest import RecordingTI

HOOK_PARAMS = {"retry_policy": RetryPolicy(backoff_base=0.05, backoff_max=0.2), "operation_poll_interval": 0.05}
DEMO = f"{RESOURCE_GROUP}/{VAULT_NAME}"
FILTER_DATE = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [AP]M"


def make_op(**kwargs: Any) -> BackupHealthCheckOperator:
    return BackupHealthCheckOperator(task_id="health", hook_params=HOOK_PARAMS, **kwargs)


def backup(item: SeededItem, outcome: str) -> str:
    hook = AzureBackupHook(**HOOK_PARAMS)  # type: ignore[arg-type]
    job_id = hook.trigger_backup(item.container_name, item.protected_item_name).job_id
    assert hook.wait_for_job(job_id, poll_interval=0.1).status == outcome
    return job_id


def names(report: dict[str, Any], category: str) -> list[str]:
    return sorted(e["item"] for e in report[category])


def run_failing(op: BackupHealthCheckOperator) -> tuple[str, dict[str, Any]]:
    ti = RecordingTI()
    with pytest.raises(AzureBackupHealthCheckError) as info:
        op.execute({"ti": ti})
    report = ti.xcom["health_report"]
    assert isinstance(report, dict) and info.value.report == report and report["ok"] is False
    return str(info.value), report


@pytest.fixture(autouse=True)
def _quick_jobs(emulator: Emulator) -> None:
    emulator.configure(operation_polls_in_progress=0)


def test_seeded_vault_is_healthy(emulator: Emulator) -> None:
    ti = RecordingTI()
    report = make_op().execute({"ti": ti})
    assert ti.xcom["health_report"] == report and report["ok"] is True
    assert report["vaults"] == [DEMO] and report["items"] == 3
    assert names(report, "healthy") == ["salesdb", "share-reports", "vm-app-01"]
    assert all(not report[c] for c in ("stale", "failed", "protection_stopped", "protection_error", "vault_errors"))
    entry = report["healthy"][0]
    assert entry["vault"] == DEMO and entry["protected_item_name"] and entry["container_name"]
    assert entry["last_backup_time"] and entry["last_backup_status"] and entry["reason"]


def test_failed_stale_and_warnings(emulator: Emulator) -> None:
    for item in (VM_ITEM, FILE_SHARE_ITEM):
        emulator.set_item_behavior(item.protected_item_name, outcome="Completed", duration_seconds=300)
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Failed", duration_seconds=300)
    failed_job = backup(VM_ITEM, "Failed")
    emulator.set_item_behavior(
        FILE_SHARE_ITEM.protected_item_name, outcome="CompletedWithWarnings", duration_seconds=300
    )
    warned_job = backup(FILE_SHARE_ITEM, "CompletedWithWarnings")

    # max_age 2 h: the seeded SQL database's last backup (8 h old) is stale; the share just backed up.
    message, report = run_failing(make_op(max_age=timedelta(hours=2)))
    assert names(report, "failed") == ["vm-app-01"] and report["failed"][0]["job_id"] == failed_job
    assert f"latest backup job {failed_job}" in report["failed"][0]["reason"]
    assert "ended Failed: error " in report["failed"][0]["reason"]
    assert report["failed"][0]["last_backup_status"] == "Failed"
    assert names(report, "stale") == ["salesdb"] and "max_age 2 h" in report["stale"][0]["reason"]
    assert names(report, "healthy") == ["share-reports"]
    assert [(e["item"], e["job_id"]) for e in report["warnings"]] == [("share-reports", warned_job)]
    assert "3 items in 1 vault(s): 1 stale, 1 failed, 0 protection_stopped" in message
    assert "vm-app-01: latest backup job" in message and "salesdb: last successful backup" in message

    # Report-only mode: the same findings, no exception.
    report_only = make_op(max_age=2, fail_on_unhealthy=False).execute({"ti": RecordingTI()})
    assert names(report_only, "failed") == ["vm-app-01"] and names(report_only, "stale") == ["salesdb"]


def test_jobs_are_paged_and_filtered_in_the_service_date_format(emulator: Emulator) -> None:
    emulator.configure(job_page_size=1)
    emulator.clear_requests()
    report = make_op(lookback=timedelta(days=5), backup_management_types=["AzureIaasVM", "AzureWorkload"]).execute(
        {"ti": RecordingTI()}
    )
    # The seeded history: two backup jobs of the VM and two of the database in five days, one page each.
    assert report["items"] == 2 and report["jobs"] == 4
    gets = [r for r in emulator.requests if r.method == "GET"]
    job_lists = [r for r in gets if r.path.endswith("/backupJobs")]
    assert len(job_lists) == 4
    first = [r for r in job_lists if "$skiptoken" not in {k.lower() for k in r.query}]
    assert len(first) == 2  # one first page per type, the others followed nextLink
    for request in job_lists:
        odata = request.query["$filter"]
        assert re.search(rf"startTime eq '{FILTER_DATE}' and endTime eq '{FILTER_DATE}'", odata), odata
        assert "operation eq 'Backup'" in odata
    item_lists = [r for r in gets if r.path.endswith("/backupProtectedItems")]
    assert [r.query["$filter"] for r in item_lists] == [
        "backupManagementType eq 'AzureIaasVM'",
        "backupManagementType eq 'AzureWorkload'",
    ]


def test_an_unreadable_vault_is_reported_and_hides_nothing(emulator: Emulator) -> None:
    emulator.set_item_behavior(SQL_ITEM.protected_item_name, outcome="Failed", duration_seconds=300)
    backup(SQL_ITEM, "Failed")
    message, report = run_failing(make_op(vaults=["rg-gone/vault-gone", DEMO]))
    assert report["vaults"] == ["rg-gone/vault-gone", DEMO]
    assert [e["vault"] for e in report["vault_errors"]] == ["rg-gone/vault-gone"]
    assert "HTTP 404 ResourceGroupNotFound" in report["vault_errors"][0]["error"]
    assert names(report, "failed") == ["salesdb"] and names(report, "healthy") == ["share-reports", "vm-app-01"]
    assert "1 unreadable vault(s)" in message and "vault rg-gone/vault-gone: " in message


def test_a_vault_error_fails_even_in_report_only_mode(emulator: Emulator) -> None:
    # Connection resets on every request to the jobs list: the transport gives up after its bounded retries.
    emulator.add_fault(Fault(kind="reset", method="GET", path_regex="/backupJobs$", count=50))
    _, report = run_failing(make_op(fail_on_unhealthy=False))
    assert [e["vault"] for e in report["vault_errors"]] == [DEMO]
    assert "reset" in report["vault_errors"][0]["error"]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"vaults": ["no-slash"]}, "vaults"),
        ({"vaults": "rg/vault"}, "vaults"),
        ({"vaults": []}, "vaults"),
        ({"max_age": 0}, "max_age"),
        ({"lookback": "a day"}, "lookback"),
        ({"backup_management_types": ["AzureVM"]}, "backup_management_types"),
    ],
)
def test_bad_arguments_name_field_and_value(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(AzureBackupConfigError, match=rf"^{field}="):
        make_op(**kwargs)


def test_templated_numbers_are_read_at_run_time(emulator: Emulator) -> None:
    op = make_op(max_age="{{ params.max_age_hours }}", lookback="{{ params.lookback_hours }}")
    op.max_age, op.lookback = "0.001", "48"  # as rendered
    _, report = run_failing(op)
    assert report["max_age_hours"] == pytest.approx(0.001) and report["lookback_hours"] == 48
    assert names(report, "stale") == ["salesdb", "share-reports", "vm-app-01"]
