"""The spec's own x-ms-examples parse into the typed models (the ground truth for response shapes)."""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_backup_provider.core import (
    OperationStatusValue,
    build_job_filter,
    job_event_status,
    parse_job,
    parse_operation_handle,
    parse_operation_status,
    parse_page,
    parse_protected_item,
    parse_recovery_point,
    parse_vault,
)
from tests.unit.conftest import (
    BODY_PARSERS,
    DP_OPERATION_ID,
    DP_STATUS_ID,
    EXAMPLES,
    EXAMPLES_DIR,
    LOGGER,
    UTC,
    VAULT_PATH,
    ZERO_ID,
    all_example_files,
    example_body,
    example_headers,
    load_example,
    resp,
    warnings_of,
)

# --------------------------------------------------------------------------------------------------------------------
# 1. Spec examples
# --------------------------------------------------------------------------------------------------------------------


def test_every_example_file_is_classified() -> None:
    files = all_example_files()
    assert files, f"no examples found under {EXAMPLES_DIR}"
    assert set(files) == set(EXAMPLES), "classify every example file in EXAMPLES (and drop removed ones)"


@pytest.mark.parametrize("name", all_example_files())
def test_example_file_parses(name: str) -> None:
    """Every example: its 200 body parses with the matching parser; its 202 headers give an operation handle."""
    assert name in EXAMPLES, f"new example {name}: add it to EXAMPLES"
    body_kind, has_handle = EXAMPLES[name]
    responses = load_example(name)["responses"]
    if body_kind is not None:
        parsed = BODY_PARSERS[body_kind](responses["200"]["body"])
        if body_kind in ("jobs", "items", "points"):
            items, _next = parsed
            assert items, f"{name}: empty page"
    if has_handle:
        headers = {k.lower(): str(v) for k, v in responses["202"]["headers"].items()}
        handle = parse_operation_handle(resp(202, None, headers))
        assert handle.operation_id in (ZERO_ID, DP_OPERATION_ID)
        assert handle.retry_after == 60
        assert handle.status_url == headers.get("azure-asyncoperation")
        assert handle.result_url == headers.get("location")
    assert body_kind is not None or has_handle, f"{name}: nothing checked"


HANDLE_EXAMPLES = [name for name, (_kind, has_handle) in EXAMPLES.items() if has_handle]


@pytest.mark.parametrize("name", HANDLE_EXAMPLES)
def test_header_only_example_gives_operation_id_and_retry_after(name: str) -> None:
    headers = example_headers(name)
    handle = parse_operation_handle(resp(202, None, headers))
    expected = DP_OPERATION_ID if name.startswith("dataprotection/") else ZERO_ID
    assert handle.operation_id == expected
    assert handle.retry_after == 60.0
    # The Azure-AsyncOperation URL (operationsStatus) wins over Location when both are present.
    url = headers.get("azure-asyncoperation") or headers["location"]
    assert urlsplit(url).path.endswith(f"/{expected}")


def test_get_job_details_example() -> None:
    job = parse_job(example_body("GetJobDetails.json"))
    assert job.job_id == ZERO_ID
    assert job.resource_id is not None
    assert job.resource_id.endswith(f"/backupJobs/{ZERO_ID}")
    assert (job.status, job.operation, job.job_type) == ("InProgress", "Backup", "AzureIaaSVMJob")
    assert job.entity_friendly_name == "testvm"
    assert job.backup_management_type == "AzureIaasVM"
    assert job.start_time == datetime(2017, 8, 3, 5, 31, 7, 14604, tzinfo=UTC)
    assert job.end_time is None
    assert job.duration == timedelta(seconds=9, microseconds=878279)
    assert job.duration_text == "PT9.8782791S"
    assert [(t.task_id, t.status, t.duration) for t in job.tasks] == [
        ("Take Snapshot", "InProgress", timedelta(0)),
        ("Transfer data to vault", "NotStarted", timedelta(0)),
    ]
    assert job.property_bag == {"VM Name": "testvm"}
    assert job.backup_size is None
    assert job.errors == ()
    assert job.actions == ()
    assert not job.is_terminal
    assert not job.is_cancellable
    assert job_event_status(job) is None
    assert job.describe_progress() == "InProgress [Take Snapshot: InProgress, Transfer data to vault: NotStarted]"


@pytest.mark.parametrize(
    ("name", "statuses", "has_next"),
    [
        ("ListJobs.json", ["InProgress", "Completed"], False),
        ("ListJobsWithAllSupportedFilters.json", ["InProgress"], False),
        ("ListJobsWithStartTimeAndEndTimeFilters.json", ["InProgress", "Completed"], True),
    ],
)
def test_list_jobs_examples(name: str, statuses: list[str], has_next: bool) -> None:
    jobs, next_link = parse_page(example_body(name), parse_job)
    assert [j.status for j in jobs] == statuses
    assert all(j.job_id == ZERO_ID for j in jobs)
    assert (next_link is not None) == has_next
    if len(jobs) > 1:
        completed = jobs[1]
        assert completed.operation == "ConfigureBackup"
        assert completed.end_time == datetime(2017, 8, 3, 5, 31, 3, 755337, tzinfo=UTC)
        assert completed.duration == timedelta(seconds=31, microseconds=306629)
        assert job_event_status(completed) == "success"


def test_dataprotection_get_job_started_is_unknown_and_non_terminal(caplog: pytest.LogCaptureFixture) -> None:
    job = parse_job(example_body("dataprotection/GetJob.json"))
    assert job.job_id == "3c60cb49-63e8-4b21-b9bd-26277b3fdfae"
    assert job.status == "Started"
    assert job.duration == timedelta(0)
    assert job.start_time == datetime(2021, 3, 17, 3, 0, 3, 760414, tzinfo=UTC)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert not job.is_terminal
        assert job_event_status(job) is None
    assert any("'Started'" in m for m in warnings_of(caplog))


@pytest.mark.parametrize(
    ("name", "operation_id", "job_id"),
    [
        ("ProtectedItemOperationStatus.json", ZERO_ID, ZERO_ID),
        ("dataprotection/GetOperationStatus.json", DP_STATUS_ID, None),
        ("dataprotection/GetOperationStatusVaultContext.json", DP_STATUS_ID, None),
    ],
)
def test_operation_status_examples(name: str, operation_id: str, job_id: str | None) -> None:
    status = parse_operation_status(example_body(name))
    assert status.status == OperationStatusValue.SUCCEEDED
    assert status.operation_id == operation_id
    assert status.job_id == job_id
    assert status.error_code is None
    assert status.start_time is not None
    assert status.end_time is not None
    assert status.end_time >= status.start_time


@pytest.mark.parametrize(
    ("name", "container", "item_name", "friendly", "item_type"),
    [
        (
            "BackupProtectedItems_List.json",
            "IaasVMContainer;iaasvmcontainer;iaasvm-rg;iaasvm-1",
            "VM;iaasvmcontainer;iaasvm-rg;iaasvm-1",
            "iaasvm-1",
            "Microsoft.ClassicCompute/virtualMachines",
        ),
        (
            "ClassicCompute_ProtectedItem_Get.json",
            "IaasVMContainer;iaasvmcontainer;iaasvm-rg;iaasvm-1",
            "VM;iaasvmcontainer;iaasvm-rg;iaasvm-1",
            "iaasvm-1",
            "Microsoft.ClassicCompute/virtualMachines",
        ),
        (
            "ProtectedItemOperationResults.json",
            "IaasVMContainer;iaasvmcontainerv2;netsdktestrg;netvmtestv2vm1",
            "VM;iaasvmcontainerv2;netsdktestrg;netvmtestv2vm1",
            "netvmtestv2vm1",
            "Microsoft.Compute/virtualMachines",
        ),
    ],
)
def test_protected_item_examples(name: str, container: str, item_name: str, friendly: str, item_type: str) -> None:
    body = example_body(name)
    item = parse_page(body, parse_protected_item)[0][0] if "value" in body else parse_protected_item(body)
    assert item.container_name == container
    assert item.protected_item_name == item_name
    assert item.name == item_name
    assert item.friendly_name == friendly
    assert item.protected_item_type == item_type
    assert (item.backup_management_type, item.workload_type) == ("AzureIaasVM", "VM")
    assert (item.protection_state, item.last_backup_status) == ("Protected", "Completed")
    assert item.last_backup_time == datetime(2018, 1, 22, 12, 25, 32, 48723, tzinfo=UTC)


def test_recovery_points_example() -> None:
    points, next_link = parse_page(example_body("RecoveryPoints_List.json"), parse_recovery_point)
    assert next_link is None
    assert [p.recovery_point_id for p in points] == ["22244821112382", "24977149827250", "70477518625276"]
    assert {p.object_type for p in points} == {"IaasVMRecoveryPoint"}
    assert {p.recovery_point_type for p in points} == {"CrashConsistent"}
    assert points[0].recovery_point_time == datetime(2017, 12, 21, 22, 48, 25, 435395, tzinfo=UTC)
    assert points[0].resource_id is not None
    assert points[0].resource_id.endswith("/recoveryPoints/22244821112382")


def test_workload_recovery_point_uses_time_in_utc() -> None:
    point = parse_recovery_point(
        {
            "name": "1",
            "properties": {
                "objectType": "AzureWorkloadRecoveryPoint",
                "recoveryPointTimeInUTC": "2024-01-02T03:04:05Z",
                "type": "Full",
            },
        }
    )
    assert point.recovery_point_time == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert point.recovery_point_type == "Full"


def test_example_filter_uses_the_clauses_build_job_filter_builds() -> None:
    example_filter = load_example("ListJobsWithAllSupportedFilters.json")["parameters"]["$filter"]
    built = build_job_filter(
        status="InProgress",
        operation="Backup",
        backup_management_type="AzureIaasVM",
        start_time=datetime(2016, 1, 1, tzinfo=UTC),
        end_time=datetime(2017, 11, 29, tzinfo=UTC),
    )
    assert built is not None

    def clauses(text: str) -> dict[str, str]:
        return dict(re.findall(r"(\w+) eq '([^']*)'", text))

    ours, theirs = clauses(built), clauses(example_filter)
    assert set(ours) == set(theirs)
    for key in ("status", "operation", "backupManagementType"):
        assert ours[key] == theirs[key]


@pytest.mark.parametrize(
    ("body", "parser", "message"),
    [
        (None, parse_job, "not a job resource"),
        ({"name": "x"}, parse_job, "not a job resource"),
        ({"properties": []}, parse_job, "not a job resource"),
        ({"name": "x"}, parse_operation_status, "not an operation status"),
        ([], parse_operation_status, "not an operation status"),
        ({"id": "x"}, parse_protected_item, "not a protected item"),
        ({"id": "x"}, parse_recovery_point, "not a recovery point"),
        ({"id": "x"}, parse_vault, "not a vault"),
        ({"value": {}}, lambda b: parse_page(b, parse_job), "not a list page"),
        ("text", lambda b: parse_page(b, parse_job), "not a list page"),
    ],
)
def test_parsers_reject_wrong_shapes(body: Any, parser: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parser(body)


def test_parse_vault() -> None:
    vault = parse_vault(
        {"id": f"{VAULT_PATH}", "name": "v", "location": "westeurope", "properties": {"provisioningState": "Succeeded"}}
    )
    assert (vault.name, vault.location, vault.provisioning_state) == ("v", "westeurope", "Succeeded")


def test_parse_page_without_value_or_next_link_is_empty() -> None:
    assert parse_page({}, parse_job) == ([], None)
    assert parse_page({"value": [], "nextLink": ""}, parse_job) == ([], None)
