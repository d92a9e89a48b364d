"""Unit tests of the sans-I/O Azure Backup protocol core (``airflow_backup_provider.protocol``).

No network, no sleeps: flows are driven by :class:`Driver` against scripted outcomes, and the spec's own
x-ms-examples (``tests/spec/examples``) are the ground truth for response shapes.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, parse_qsl, urlsplit

import pytest

from airflow_backup_provider.exceptions import (
    AzureBackupAcceptedError,
    AzureBackupApiError,
    AzureBackupAuthError,
    AzureBackupConfigError,
    AzureBackupForeignHostError,
    AzureBackupJobFailedError,
    AzureBackupNotFoundError,
    AzureBackupOperationError,
    AzureBackupOperationInProgressError,
    AzureBackupThrottledError,
    AzureBackupTimeoutError,
    AzureBackupTransportError,
    AzureBackupTriggerEventError,
)
from airflow_backup_provider.protocol import (
    CLOUDS,
    DEFAULT_API_VERSION,
    VAULT_API_VERSION,
    Action,
    ApiRequest,
    ApiResponse,
    BackupApi,
    BackupJob,
    BackupJobStatus,
    ConnectionSettings,
    EventStatus,
    Flow,
    ItemRef,
    OperationStatusValue,
    Outcome,
    RetryPolicy,
    Send,
    Sleep,
    TransportFailure,
    TransportFailureKind,
    TriggeredOperation,
    VaultRef,
    WaitSettings,
    build_backup_request,
    build_job_event,
    build_job_filter,
    call,
    call_parsed,
    cancel_job,
    check_job_outcome,
    describe_job_failure,
    error_from_response,
    find_in_progress_backup,
    follow_operation,
    format_duration_iso,
    format_filter_datetime,
    get_job,
    job_event_status,
    job_matches_item,
    jobs_started_by_request,
    list_pages,
    parse_datetime,
    parse_duration,
    parse_job,
    parse_operation_handle,
    parse_operation_status,
    parse_page,
    parse_protected_item,
    parse_recovery_point,
    parse_retry_after,
    parse_vault,
    portal_job_url,
    redact_url,
    require_name,
    resolve_cloud,
    resolve_job_event,
    status_is_success,
    trigger_and_follow,
    validate_job_event,
    wait_for_job,
    wait_for_location,
)

T = TypeVar("T")

# --------------------------------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------------------------------

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "spec" / "examples"
LOGGER = "airflow_backup_provider.protocol"

ARM = "https://management.azure.com"
ZERO_ID = "00000000-0000-0000-0000-000000000000"
SUB = ZERO_ID
JOB_ID = "7ddead57-bcb9-4269-ac31-6a1b57588700"
OP_ID = "b8daecaa-4b2c-4f0e-9c5b-1a2b3c4d5e6f"
SECRET = "s3cr3t-client-secret-value"

VAULT = VaultRef(SUB, "SwaggerTestRg", "NetSDKTestRsVault")
VAULT_PATH = (
    f"/subscriptions/{SUB}/resourceGroups/SwaggerTestRg/providers/Microsoft.RecoveryServices/vaults/NetSDKTestRsVault"
)
CONTAINER = "IaasVMContainer;iaasvmcontainerv2;testrg;vm1"
ITEM_NAME = "VM;iaasvmcontainerv2;testrg;vm1"
ITEM = ItemRef(VAULT, CONTAINER, ITEM_NAME)
ITEM_PATH = (
    f"{VAULT_PATH}/backupFabrics/Azure/protectionContainers/IaasVMContainer%3Biaasvmcontainerv2%3Btestrg%3Bvm1"
    "/protectedItems/VM%3Biaasvmcontainerv2%3Btestrg%3Bvm1"
)
STATUS_URL = f"{ARM}{ITEM_PATH}/operationsStatus/{OP_ID}?api-version=2016-12-01"
RESULT_URL = f"{ARM}{ITEM_PATH}/operationResults/{OP_ID}?api-version=2016-12-01"
VM_BODY: dict[str, Any] = {"properties": {"objectType": "IaasVMBackupRequest"}}

API = BackupApi(ARM)
POLICY = RetryPolicy(max_attempts=4, backoff_base=1.0, backoff_max=30.0, max_retry_after=120.0)
GET_JOB = API.get_job(VAULT, JOB_ID)
POST_BACKUP = API.trigger_backup(ITEM, VM_BODY)

# Fixed "now" with sub-millisecond digits, to check the expiry format truncates to milliseconds.
NOW = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=timezone.utc)
UTC = timezone.utc
MAX_ACTIONS = 200

# Every file under tests/spec/examples: what its 200 body is (None: not modelled by the protocol) and whether its
# 202 carries an operation handle. test_every_example_file_is_classified fails for a file missing here.
BodyKind = str | None
EXAMPLES: dict[str, tuple[BodyKind, bool]] = {
    "BackupProtectedItems_List.json": ("items", False),
    "CancelJobOperationResult.json": (None, True),
    "ClassicCompute_ProtectedItem_Get.json": ("item", False),
    "ExportJobsOperationResult.json": (None, True),
    "GetJobDetails.json": ("job", False),
    "ListJobs.json": ("jobs", False),
    "ListJobsWithAllSupportedFilters.json": ("jobs", False),
    "ListJobsWithStartTimeAndEndTimeFilters.json": ("jobs", False),
    "ProtectedItemOperationResults.json": ("item", True),
    "ProtectedItemOperationStatus.json": ("operation", False),
    "RecoveryPoints_List.json": ("points", False),
    "TriggerBackup_Post.json": (None, True),
    "TriggerCancelJob.json": (None, True),
    "TriggerExportJobs.json": (None, True),
    "TriggerRestore_ALR_IaasVMRestoreRequest.json": (None, True),
    "TriggerRestore_RestoreDisks_IaasVMRestoreRequest.json": (None, True),
    "dataprotection/GetJob.json": ("job", False),
    "dataprotection/GetOperationStatus.json": ("operation", False),
    "dataprotection/GetOperationStatusVaultContext.json": ("operation", False),
    # Its 200 body is OperationJobExtendedInfo {jobId}, a Backup-vault LRO result this module does not model.
    "dataprotection/TriggerBackup.json": (None, True),
}
BODY_PARSERS: dict[str, Any] = {
    "job": parse_job,
    "jobs": lambda body: parse_page(body, parse_job),
    "operation": parse_operation_status,
    "item": parse_protected_item,
    "items": lambda body: parse_page(body, parse_protected_item),
    "points": lambda body: parse_page(body, parse_recovery_point),
}
DP_OPERATION_ID = (
    "ZTA4YjQ0ZGYtYmNkNS00YTk1LWFjZTMtOTc1MjNmZWIxYWZlO2Y1ODg1MzA3LWJkNjItNDQ2OC05ZjZlLTJkMGM2NjNiNmJmNg==2026-06-01"
)
DP_STATUS_ID = "MjkxOTMyODMtYTE3My00YzJjLTg5NjctN2E4MDIxNDA3NjA2OzdjNGE2ZWRjLWJjMmItNDRkYi1hYzMzLWY1YzEwNzk5Y2EyOA=="

# A failed VM backup job in the shape of the DOCS managejobs example (TimeSpan duration, integer actionsInfo).
FAILED_JOB_BODY: dict[str, Any] = {
    "id": f"{VAULT_PATH}/backupJobs/{JOB_ID}",
    "name": JOB_ID,
    "type": "Microsoft.RecoveryServices/vaults/backupJobs",
    "properties": {
        "jobType": "AzureIaaSVMJob",
        "entityFriendlyName": "vm1",
        "backupManagementType": "AzureIaasVM",
        "operation": "Backup",
        "status": "Failed",
        "startTime": "2018-05-21T08:35:40.9488967Z",
        "endTime": "2018-05-21T08:55:44.0385664Z",
        "duration": "00:20:23.0896697",
        "actionsInfo": [2],
        "containerName": "iaasvmcontainerv2;testrg;vm1",
        "errorDetails": [
            {
                "errorCode": 400001,
                "errorString": "Snapshot operation failed due to VSS writers in bad state.",
                "errorTitle": "",
                "recommendations": ["Restart VSS writers.", "Retry the backup."],
            },
            {"errorCode": "100002", "errorString": "Second error."},
            {"errorString": "Error without a code."},
        ],
        "extendedInfo": {
            "propertyBag": {"VM Name": "vm1"},
            "dynamicErrorMessage": "The VM agent is unresponsive.",
            "tasksList": [{"taskId": "Take Snapshot", "status": "Failed", "duration": "PT1M"}],
        },
    },
}
COMPLETED_JOB_BODY: dict[str, Any] = {
    "id": f"{VAULT_PATH}/backupJobs/{JOB_ID}",
    "name": JOB_ID,
    "type": "Microsoft.RecoveryServices/vaults/backupJobs",
    "properties": {
        "jobType": "AzureIaaSVMJob",
        "entityFriendlyName": "vm1",
        "backupManagementType": "AzureIaasVM",
        "operation": "Backup",
        "status": "Completed",
        "startTime": "2018-05-21T08:35:40.9488967Z",
        "endTime": "2018-05-21T08:55:44.0385664Z",
        "duration": "00:20:23.0896697",
        "actionsInfo": [1],
        "errorDetails": [],
        "extendedInfo": {
            "propertyBag": {"VM Name": "vm1", "Backup Size": "2332 MB"},
            "progressPercentage": 100.0,
            "tasksList": [
                {
                    "taskId": "Take Snapshot",
                    "status": "Completed",
                    "startTime": "0001-01-01T00:00:00",
                    "endTime": "0001-01-01T00:00:00",
                    "duration": "00:00:40.123",
                },
                {"taskId": "Transfer data to vault", "status": "Completed", "duration": "PT19M43S"},
            ],
        },
    },
}


# --------------------------------------------------------------------------------------------------------------------
# Helpers: responses, examples, the flow driver
# --------------------------------------------------------------------------------------------------------------------


def resp(status: int, body: Any = None, headers: Mapping[str, Any] | None = None) -> ApiResponse:
    """An ApiResponse as a transport would hand it back: lower-case header names, raw bytes."""
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    return ApiResponse(status, {k.lower(): str(v) for k, v in (headers or {}).items()}, raw)


def arm_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def op_status(
    status: str,
    *,
    job_id: str | None = None,
    job_ids: list[str] | None = None,
    error: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"id": OP_ID, "name": OP_ID, "status": status, "startTime": "2018-05-21T08:35:40.9488967Z"}
    if job_id is not None:
        body["properties"] = {"objectType": "OperationStatusJobExtendedInfo", "jobId": job_id}
    if job_ids is not None:
        body["properties"] = {"objectType": "OperationStatusJobsExtendedInfo", "jobIds": job_ids}
    if error is not None:
        body["error"] = dict(error)
    return body


def job_body(status: str = "InProgress", **props: Any) -> dict[str, Any]:
    return {"id": f"{VAULT_PATH}/backupJobs/{JOB_ID}", "name": JOB_ID, "properties": {"status": status, **props}}


def make_job(status: str = "InProgress", **props: Any) -> BackupJob:
    return parse_job(job_body(status, **props))


def load_example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES_DIR / name).read_text(encoding="utf-8"))


def example_headers(name: str, code: str = "202") -> dict[str, str]:
    return {k.lower(): str(v) for k, v in load_example(name)["responses"][code]["headers"].items()}


def example_body(name: str, code: str = "200") -> Any:
    return load_example(name)["responses"][code]["body"]


def all_example_files() -> list[str]:
    return sorted(p.relative_to(EXAMPLES_DIR).as_posix() for p in EXAMPLES_DIR.rglob("*.json"))


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


@dataclass
class FakeClock:
    """The clock of WaitSettings; the driver advances it by every Sleep."""

    now: float = 1_000_000.0

    def __call__(self) -> float:
        return self.now


class Driver:
    """Drives a protocol flow against scripted outcomes and records every action it yields.

    ``run`` returns the flow's result or lets its exception propagate; the recorded actions stay available.
    """

    def __init__(self, *outcomes: ApiResponse | TransportFailure, clock: FakeClock | None = None) -> None:
        self.outcomes = list(outcomes)
        self.clock = clock or FakeClock()
        self.actions: list[Action] = []

    def run(self, flow: Flow[T]) -> T:
        outcome: Outcome = None
        try:
            while True:
                action = flow.send(outcome)
                self.actions.append(action)
                assert len(self.actions) <= MAX_ACTIONS, "the flow does not terminate"
                if isinstance(action, Sleep):
                    self.clock.now += action.seconds
                    outcome = None
                else:
                    assert isinstance(action, Send), f"unexpected action {action!r}"
                    assert self.outcomes, f"unscripted {action.request.method} {action.request.url}"
                    outcome = self.outcomes.pop(0)
        except StopIteration as stop:
            return stop.value

    @property
    def sends(self) -> list[Send]:
        return [a for a in self.actions if isinstance(a, Send)]

    @property
    def urls(self) -> list[str]:
        return [s.request.url for s in self.sends]

    @property
    def sleeps(self) -> list[float]:
        return [a.seconds for a in self.actions if isinstance(a, Sleep)]

    @property
    def refresh_flags(self) -> list[bool]:
        return [s.refresh_token for s in self.sends]

    @property
    def steps(self) -> list[str]:
        """Compact trace: the HTTP method of each Send, ``sleep:<seconds>`` for each Sleep."""
        return [a.request.method if isinstance(a, Send) else f"sleep:{a.seconds:g}" for a in self.actions]


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


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


# --------------------------------------------------------------------------------------------------------------------
# 2. Durations and timestamps
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("PT9.8782791S", timedelta(seconds=9, microseconds=878279)),
        ("PT0S", timedelta(0)),
        ("P1DT2H3M4.5S", timedelta(days=1, hours=2, minutes=3, seconds=4.5)),
        ("PT19M43S", timedelta(minutes=19, seconds=43)),
        ("PT1.5H", timedelta(hours=1, minutes=30)),
        ("P2D", timedelta(days=2)),
        ("00:20:23.0896697", timedelta(minutes=20, seconds=23, microseconds=89670)),
        ("1.02:03:04.5", timedelta(days=1, hours=2, minutes=3, seconds=4.5)),
        ("00:00:00", timedelta(0)),
        (" PT5S ", timedelta(seconds=5)),
    ],
)
def test_parse_duration(text: str, expected: timedelta, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert parse_duration(text) == expected
    assert warnings_of(caplog) == []


@pytest.mark.parametrize("text", ["garbage", "P", "PT", "P1W", "12:5", "-PT5S", "1:02:03:04"])
def test_parse_duration_garbage_is_none_with_warning(text: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert parse_duration(text) is None
    assert any(repr(text) in m for m in warnings_of(caplog))


@pytest.mark.parametrize("value", [None, "", 5, ["PT1S"]])
def test_parse_duration_non_strings_are_none_silently(value: Any, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert parse_duration(value) is None
    assert warnings_of(caplog) == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "PT0S"),
        (timedelta(seconds=4.5), "PT4.5S"),
        (timedelta(hours=2), "PT2H"),
        (timedelta(minutes=3), "PT3M"),
        (timedelta(days=1, hours=2, minutes=3, seconds=4.5), "PT26H3M4.5S"),
        (None, None),
    ],
)
def test_format_duration_iso(value: timedelta | None, expected: str | None) -> None:
    assert format_duration_iso(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        timedelta(seconds=9, microseconds=878279),
        timedelta(minutes=20, seconds=23, microseconds=89670),
        timedelta(days=3, hours=4, minutes=5, seconds=6),
    ],
)
def test_format_duration_iso_round_trips(value: timedelta) -> None:
    text = format_duration_iso(value)
    assert text is not None
    assert text.startswith("PT")
    parsed = parse_duration(text)
    assert parsed is not None
    assert abs(parsed - value) < timedelta(milliseconds=1)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(microseconds=10), "PT0.00001S"),
        (timedelta(minutes=1, seconds=59, microseconds=999999), "PT1M59.999999S"),
    ],
    ids=["exponent", "sixty-seconds"],
)
def test_format_duration_iso_small_and_near_minute_values(value: timedelta, expected: str) -> None:
    assert format_duration_iso(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2017-08-03T05:31:07.014604Z", datetime(2017, 8, 3, 5, 31, 7, 14604, tzinfo=UTC)),
        ("2017-08-03T05:31:03.7553376Z", datetime(2017, 8, 3, 5, 31, 3, 755337, tzinfo=UTC)),
        ("2019-11-20T09:49:46Z", datetime(2019, 11, 20, 9, 49, 46, tzinfo=UTC)),
        ("2019-11-20T09:49:46.5z", datetime(2019, 11, 20, 9, 49, 46, 500000, tzinfo=UTC)),
        ("2019-11-20T09:49:46", datetime(2019, 11, 20, 9, 49, 46, tzinfo=UTC)),
        (
            "2019-11-20T09:49:46.1234567+05:30",
            datetime(2019, 11, 20, 9, 49, 46, 123456, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
        ("2019-11-20T09:49:46-08:00", datetime(2019, 11, 20, 17, 49, 46, tzinfo=UTC)),
        ("2019-11-20T09:49:46.25-08:00", datetime(2019, 11, 20, 17, 49, 46, 250000, tzinfo=UTC)),
        ("2019-11-20", datetime(2019, 11, 20, tzinfo=UTC)),
    ],
)
def test_parse_datetime(text: str, expected: datetime) -> None:
    parsed = parse_datetime(text)
    assert parsed == expected
    assert parsed is not None
    assert parsed.tzinfo is not None


@pytest.mark.parametrize(
    "text",
    ["0001-01-01T00:00:00", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00.0000000Z", "2001-01-01T00:00:00Z"],
)
def test_parse_datetime_sentinels_are_none(text: str) -> None:
    assert parse_datetime(text) is None


def test_parse_datetime_near_sentinel_is_a_real_date() -> None:
    assert parse_datetime("2001-01-02T00:00:00Z") == datetime(2001, 1, 2, tzinfo=UTC)


@pytest.mark.parametrize("value", ["garbage", "2019-13-45T00:00:00Z", "yesterday at noon"])
def test_parse_datetime_garbage_is_none_with_warning(value: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert parse_datetime(value) is None
    assert any(repr(value) in m for m in warnings_of(caplog))


@pytest.mark.parametrize("value", [None, "", 1_500_000_000, {"t": 1}])
def test_parse_datetime_non_strings_are_none(value: Any) -> None:
    assert parse_datetime(value) is None


# --------------------------------------------------------------------------------------------------------------------
# 3. Job status rules, failures, summaries
# --------------------------------------------------------------------------------------------------------------------

# status -> (terminal, event status)
JOB_STATUS_TABLE: dict[str, tuple[bool, str | None]] = {
    "InProgress": (False, None),
    "Cancelling": (False, None),
    "Completed": (True, "success"),
    "CompletedWithWarnings": (True, "warning"),
    "Failed": (True, "failed"),
    "Cancelled": (True, "failed"),
    "Invalid": (True, "failed"),
}


def test_job_status_table_covers_every_status() -> None:
    assert set(JOB_STATUS_TABLE) == BackupJobStatus.ALL_STATUSES


@pytest.mark.parametrize(
    ("owner", "attr", "expected"),
    [
        (BackupJobStatus, "NON_TERMINAL_STATUSES", {"InProgress", "Cancelling"}),
        (
            BackupJobStatus,
            "TERMINAL_STATUSES",
            {"Completed", "CompletedWithWarnings", "Failed", "Cancelled", "Invalid"},
        ),
        (BackupJobStatus, "SUCCESS_STATUSES", {"Completed", "CompletedWithWarnings"}),
        (BackupJobStatus, "FAILURE_STATUSES", {"Failed", "Cancelled", "Invalid"}),
        # Operations spell it with one l (OperationStatusValues), jobs with two (JobStatus).
        (OperationStatusValue, "FAILURE_STATUSES", {"Failed", "Canceled", "Invalid"}),
    ],
)
def test_status_sets(owner: type, attr: str, expected: set[str]) -> None:
    assert getattr(owner, attr) == expected


def test_job_status_sets_partition() -> None:
    s = BackupJobStatus
    assert s.SUCCESS_STATUSES | s.FAILURE_STATUSES == s.TERMINAL_STATUSES
    assert not s.SUCCESS_STATUSES & s.FAILURE_STATUSES
    assert not s.TERMINAL_STATUSES & s.NON_TERMINAL_STATUSES


@pytest.mark.parametrize(("status", "terminal", "event"), [(k, *v) for k, v in JOB_STATUS_TABLE.items()])
def test_job_status_rules(status: str, terminal: bool, event: str | None, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert BackupJobStatus.is_terminal(status) is terminal
        job = make_job(status)
        assert job.is_terminal is terminal
        assert job_event_status(job) == event
    assert warnings_of(caplog) == []
    assert (status in BackupJobStatus.SUCCESS_STATUSES) == (event in ("success", "warning"))
    assert (status in BackupJobStatus.FAILURE_STATUSES) == (event == "failed")


@pytest.mark.parametrize("status", ["Started", "Paused", "Canceled", "completed", ""])
def test_unknown_job_status_is_non_terminal_with_warning(status: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert BackupJobStatus.is_terminal(status) is False
    assert any(repr(status) in m for m in warnings_of(caplog))


def test_missing_job_status_is_unknown_and_still_running(caplog: pytest.LogCaptureFixture) -> None:
    job = parse_job({"name": JOB_ID, "properties": {}})
    assert job.status == "Unknown"
    assert job_event_status(job) is None
    assert "Unknown Azure Backup job status" in caplog.text


def test_job_id_falls_back_to_last_segment_of_id() -> None:
    job = parse_job({"id": f"{VAULT_PATH}/backupJobs/{JOB_ID}", "properties": {"status": "InProgress"}})
    assert job.job_id == JOB_ID


@pytest.mark.parametrize(
    ("actions_info", "expected"),
    [
        ([1], ("Cancellable",)),
        (["Cancellable"], ("Cancellable",)),
        ([0, 2], ("Invalid", "Retriable")),
        ([9], ("9",)),
        (None, ()),
        ([], ()),
    ],
)
def test_actions_info(actions_info: Any, expected: tuple[str, ...]) -> None:
    job = make_job("InProgress", actionsInfo=actions_info)
    assert job.actions == expected
    assert job.is_cancellable is ("Cancellable" in expected)


def test_describe_job_failure() -> None:
    job = parse_job(FAILED_JOB_BODY)
    assert [e.code for e in job.errors] == [400001, 100002, None]
    message = describe_job_failure(job, item=ITEM_NAME)
    for fragment in (
        JOB_ID,
        ITEM_NAME,
        "(Backup)",
        "ended Failed",
        "error codes: 400001, 100002;",
        "error 400001: Snapshot operation failed due to VSS writers in bad state.",
        "Recommendations: Restart VSS writers. Retry the backup.",
        "error 100002: Second error.",
        "error ?: Error without a code.",
        "The VM agent is unresponsive.",
    ):
        assert fragment in message
    # Without an explicit item the friendly name is used.
    assert " for vm1 (Backup) " in describe_job_failure(job)
    assert job.actions == ("Retriable",)


def test_describe_job_failure_without_details() -> None:
    message = describe_job_failure(make_job("Cancelled"))
    assert message == (
        f"Azure Backup job {JOB_ID} for (unknown item) (operation ?) ended Cancelled; error codes: none; "
        "no error details"
    )


def test_summary_is_json_serialisable() -> None:
    job = parse_job(COMPLETED_JOB_BODY)
    summary = job.summary()
    decoded = json.loads(json.dumps(summary))
    assert decoded == summary
    assert summary["job_id"] == JOB_ID
    assert summary["status"] == "Completed"
    assert summary["backup_size"] == "2332 MB"
    assert summary["start_time"] == "2018-05-21T08:35:40.948896+00:00"
    assert summary["end_time"] == "2018-05-21T08:55:44.038566+00:00"
    assert re.fullmatch(r"PT20M23\.\d+S", summary["duration"])
    assert summary["duration_seconds"] == pytest.approx(1223.08967)
    assert summary["error_codes"] == []
    assert summary["errors"] == []
    assert job.actions == ("Cancellable",)
    # Task times at the 0001-01-01 sentinel mean "not started/ended" and become None.
    assert (job.tasks[0].start_time, job.tasks[0].end_time) == (None, None)
    assert job.tasks[0].duration == timedelta(seconds=40, microseconds=123000)


def test_summary_of_failed_job_lists_errors_and_is_json() -> None:
    summary = parse_job(FAILED_JOB_BODY).summary()
    json.dumps(summary)
    assert summary["error_codes"] == [400001, 100002, None]
    assert summary["backup_size"] is None
    assert len(summary["errors"]) == 3


def test_summary_without_duration() -> None:
    summary = make_job("InProgress").summary()
    assert (summary["duration"], summary["duration_seconds"], summary["start_time"]) == (None, None, None)


@pytest.mark.parametrize(
    ("bag", "expected"),
    [
        ({"VM Name": "vm1", "Backup Size": "2332 MB"}, "2332 MB"),
        ({"backup size": "1 GB"}, "1 GB"),
        ({"Data Transferred (in MB)": "10"}, "10"),
        ({"VM Name": "vm1"}, None),
    ],
)
def test_backup_size_from_property_bag(bag: dict[str, str], expected: str | None) -> None:
    assert make_job("Completed", extendedInfo={"propertyBag": bag}).backup_size == expected


def test_describe_progress() -> None:
    job = make_job(
        "InProgress",
        extendedInfo={
            "progressPercentage": 42.5,
            "tasksList": [
                {"taskId": "Take Snapshot", "status": "Completed"},
                {"taskId": "Transfer data to vault", "status": "InProgress", "progressPercentage": 10},
            ],
        },
    )
    assert (
        job.describe_progress() == "InProgress 42.5% [Take Snapshot: Completed, Transfer data to vault: InProgress 10%]"
    )


# --------------------------------------------------------------------------------------------------------------------
# 4. Backup request bodies
# --------------------------------------------------------------------------------------------------------------------

VM_CONTAINER = "IaasVMContainer;iaasvmcontainerv2;rg;vm"
AFS_CONTAINER = "StorageContainer;Storage;rg;account"
WL_CONTAINER = "VMAppContainer;Compute;rg;sqlvm"
EXPIRY_45 = "2024-06-15T12:30:15.123Z"
EXPIRY_30 = "2024-05-31T12:30:15.123Z"

BACKUP_REQUEST_CASES = [
    pytest.param({"container_name": VM_CONTAINER}, {"objectType": "IaasVMBackupRequest"}, id="vm"),
    pytest.param(
        {"container_name": "iaasvmcontainer;iaasvmcontainer;rg;vm"},
        {"objectType": "IaasVMBackupRequest"},
        id="vm-lower",
    ),
    pytest.param({"container_name": AFS_CONTAINER}, {"objectType": "AzureFileShareBackupRequest"}, id="afs"),
    pytest.param(
        {"container_name": "storagecontainer;storage;rg;a"},
        {"objectType": "AzureFileShareBackupRequest"},
        id="afs-lower",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER},
        {"objectType": "AzureWorkloadBackupRequest", "backupType": "Full", "recoveryPointExpiryTimeInUTC": EXPIRY_45},
        id="workload-default-full-45-days",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER, "backup_type": "CopyOnlyFull"},
        {
            "objectType": "AzureWorkloadBackupRequest",
            "backupType": "CopyOnlyFull",
            "recoveryPointExpiryTimeInUTC": EXPIRY_30,
        },
        id="workload-copy-only-30-days",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER, "backup_type": "Log", "retain_until": "2030-01-01T00:00:00Z"},
        {"objectType": "AzureWorkloadBackupRequest", "backupType": "Log"},
        id="workload-log-drops-expiry",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER, "backup_type": "Differential"},
        {"objectType": "AzureWorkloadBackupRequest", "backupType": "Differential"},
        id="workload-differential-no-expiry",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER, "backup_type": "Incremental"},
        {"objectType": "AzureWorkloadBackupRequest", "backupType": "Incremental"},
        id="workload-incremental-no-expiry",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER, "backup_type": "Full", "enable_compression": True},
        {
            "objectType": "AzureWorkloadBackupRequest",
            "backupType": "Full",
            "enableCompression": True,
            "recoveryPointExpiryTimeInUTC": EXPIRY_45,
        },
        id="workload-compression",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER, "enable_compression": False, "retain_until": "2024-07-01T08:00:00+02:00"},
        {
            "objectType": "AzureWorkloadBackupRequest",
            "backupType": "Full",
            "enableCompression": False,
            "recoveryPointExpiryTimeInUTC": "2024-07-01T06:00:00.000Z",
        },
        id="workload-explicit-retain-until-wins",
    ),
    pytest.param(
        {"container_name": VM_CONTAINER, "retain_until": datetime(2024, 6, 1, 1, 2, 3, 456789, tzinfo=UTC)},
        {"objectType": "IaasVMBackupRequest", "recoveryPointExpiryTimeInUTC": "2024-06-01T01:02:03.456Z"},
        id="vm-retain-until-datetime",
    ),
    pytest.param(
        {"container_name": AFS_CONTAINER, "retain_until": "2030-03-07T18:29:59Z"},
        {"objectType": "AzureFileShareBackupRequest", "recoveryPointExpiryTimeInUTC": "2030-03-07T18:29:59.000Z"},
        id="afs-retain-until-string",
    ),
    pytest.param(
        {"container_name": VM_CONTAINER, "retain_until": "2030-03-07T18:29:59"},
        {"objectType": "IaasVMBackupRequest", "recoveryPointExpiryTimeInUTC": "2030-03-07T18:29:59.000Z"},
        id="naive-retain-until-is-utc",
    ),
    pytest.param(
        {
            "container_name": VM_CONTAINER,
            "backup_request": {
                "properties": {
                    "objectType": "IaasVMBackupRequest",
                    "recoveryPointExpiryTimeInUTC": "2018-12-01T02:16:20.3156909Z",
                }
            },
        },
        {"objectType": "IaasVMBackupRequest", "recoveryPointExpiryTimeInUTC": "2018-12-01T02:16:20.3156909Z"},
        id="explicit-with-properties-wrapper",
    ),
    pytest.param(
        {"container_name": VM_CONTAINER, "backup_request": {"objectType": "AzureFileShareBackupRequest"}},
        {"objectType": "AzureFileShareBackupRequest"},
        id="explicit-without-wrapper-wins-over-container",
    ),
    pytest.param(
        {"container_name": WL_CONTAINER, "backup_request": {"objectType": "AzureWorkloadBackupRequest"}},
        {"objectType": "AzureWorkloadBackupRequest", "backupType": "Full", "recoveryPointExpiryTimeInUTC": EXPIRY_45},
        id="explicit-workload-gets-defaults",
    ),
    pytest.param(
        {
            "container_name": WL_CONTAINER,
            "backup_request": {
                "objectType": "AzureWorkloadBackupRequest",
                "backupType": "Log",
                "recoveryPointExpiryTimeInUTC": "2030-01-01T00:00:00.000Z",
            },
        },
        {"objectType": "AzureWorkloadBackupRequest", "backupType": "Log"},
        id="explicit-workload-log-drops-expiry",
    ),
    pytest.param(
        {
            "container_name": WL_CONTAINER,
            "backup_request": {"objectType": "AzureWorkloadBackupRequest", "backupType": "Full"},
            "backup_type": "CopyOnlyFull",
        },
        {
            "objectType": "AzureWorkloadBackupRequest",
            "backupType": "CopyOnlyFull",
            "recoveryPointExpiryTimeInUTC": EXPIRY_30,
        },
        id="backup-type-argument-overrides-explicit",
    ),
]


@pytest.mark.parametrize(("kwargs", "expected"), BACKUP_REQUEST_CASES)
def test_build_backup_request(kwargs: dict[str, Any], expected: dict[str, Any]) -> None:
    assert build_backup_request(now=NOW, **kwargs) == {"properties": expected}


def test_build_backup_request_does_not_mutate_the_given_mapping() -> None:
    given = {"properties": {"objectType": "AzureWorkloadBackupRequest"}}
    build_backup_request(container_name=WL_CONTAINER, backup_request=given, backup_type="Log", now=NOW)
    assert given == {"properties": {"objectType": "AzureWorkloadBackupRequest"}}


def test_build_backup_request_default_now_is_current_time() -> None:
    body = build_backup_request(container_name=WL_CONTAINER)
    expiry = datetime.strptime(body["properties"]["recoveryPointExpiryTimeInUTC"], "%Y-%m-%dT%H:%M:%S.%fZ")
    delta = expiry.replace(tzinfo=UTC) - datetime.now(UTC)
    assert timedelta(days=44, hours=23) < delta <= timedelta(days=45)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param(
            {"backup_request": {"objectType": "IaasVMRestoreRequest"}},
            r"backup_request\.objectType='IaasVMRestoreRequest': must be one of",
            id="bad-object-type",
        ),
        pytest.param({"backup_request": {"properties": {}}}, r"backup_request\.objectType=None", id="no-object-type"),
        pytest.param(
            {"backup_request": "IaasVMBackupRequest"},
            r"backup_request='IaasVMBackupRequest': must be a mapping",
            id="not-mapping",
        ),
        pytest.param({"backup_type": "Weekly"}, r"backup_type='Weekly': must be one of", id="bad-backup-type"),
        pytest.param({"backup_type": "Invalid"}, r"backup_type='Invalid': must be one of", id="invalid-backup-type"),
        pytest.param(
            {"backup_request": {"objectType": "AzureWorkloadBackupRequest", "backupType": "Weekly"}},
            r"backup_type='Weekly': must be one of",
            id="bad-explicit-backup-type",
        ),
        pytest.param(
            {"enable_compression": "yes"}, r"enable_compression='yes': must be true or false", id="compression-str"
        ),
        pytest.param(
            {"backup_request": {"objectType": "IaasVMBackupRequest"}, "backup_type": "Full"},
            r"backup_type='Full': applies only to workload \(SQL/SAP\) items",
            id="backup-type-on-vm",
        ),
        pytest.param(
            {"backup_request": {"objectType": "AzureFileShareBackupRequest", "backupType": "Full"}},
            r"backup_type='Full': applies only to workload",
            id="explicit-backup-type-on-afs",
        ),
        pytest.param(
            {"retain_until": "2024-04-30T00:00:00Z"},
            r"retain_until='2024-04-30T00:00:00Z': must be in the future",
            id="retain-until-past",
        ),
        pytest.param(
            {"retain_until": NOW}, re.escape(f"retain_until={NOW!r}: must be in the future"), id="retain-until-now"
        ),
        pytest.param(
            {"retain_until": "next week"}, r"retain_until='next week': is not an ISO-8601", id="retain-until-garbage"
        ),
        pytest.param(
            {"retain_until": 1_700_000_000}, r"retain_until=1700000000: must be a datetime", id="retain-until-int"
        ),
    ],
)
def test_build_backup_request_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(AzureBackupConfigError, match=match):
        build_backup_request(now=NOW, **{"container_name": VM_CONTAINER, **kwargs})


def test_enable_compression_on_file_share_request_names_enable_compression() -> None:
    with pytest.raises(AzureBackupConfigError, match=r"enable_compression=True: applies only to workload"):
        build_backup_request(
            container_name=AFS_CONTAINER,
            backup_request={"objectType": "AzureFileShareBackupRequest"},
            enable_compression=True,
            now=NOW,
        )


@pytest.mark.parametrize(
    ("container", "kwargs", "match"),
    [
        (VM_CONTAINER, {"backup_type": "Full"}, rf"backup_type='Full': .*{re.escape(VM_CONTAINER)}"),
        (AFS_CONTAINER, {"enable_compression": True}, rf"enable_compression=True: .*{re.escape(AFS_CONTAINER)}"),
        (AFS_CONTAINER, {"enable_compression": False}, r"enable_compression=False"),
    ],
    ids=["vm-backup-type", "afs-compression", "afs-compression-false"],
)
def test_workload_options_on_vm_or_file_share_container_are_rejected(
    container: str, kwargs: dict[str, Any], match: str
) -> None:
    """backup_type / enable_compression never turn a VM or file-share container into a workload request."""
    with pytest.raises(AzureBackupConfigError, match=match):
        build_backup_request(container_name=container, now=NOW, **kwargs)


# --------------------------------------------------------------------------------------------------------------------
# 5. $filter of BackupJobs_List
# --------------------------------------------------------------------------------------------------------------------

JAN_1 = datetime(2016, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        pytest.param({}, None, id="empty"),
        pytest.param({"status": "InProgress"}, "status eq 'InProgress'", id="status"),
        pytest.param({"status": "Cancelled"}, "status eq 'Cancelled'", id="status-cancelled"),
        pytest.param({"operation": "Backup"}, "operation eq 'Backup'", id="operation"),
        pytest.param({"backup_management_type": "AzureIaasVM"}, "backupManagementType eq 'AzureIaasVM'", id="bmt"),
        pytest.param({"job_id": JOB_ID}, f"jobId eq '{JOB_ID}'", id="job-id"),
        pytest.param(
            {"start_time": JAN_1, "end_time": datetime(2017, 11, 29, tzinfo=UTC)},
            "startTime eq '2016-01-01 12:00:00 AM' and endTime eq '2017-11-29 12:00:00 AM'",
            id="window",
        ),
        pytest.param(
            {"start_time": "2016-01-01T13:05:09Z", "end_time": "2016-01-02T00:00:00+01:00"},
            "startTime eq '2016-01-01 01:05:09 PM' and endTime eq '2016-01-01 11:00:00 PM'",
            id="strings-and-offsets-in-utc",
        ),
        pytest.param(
            {"start_time": datetime(2016, 1, 1, 12), "end_time": datetime(2016, 1, 1, 12)},
            "startTime eq '2016-01-01 12:00:00 PM' and endTime eq '2016-01-01 12:00:00 PM'",
            id="naive-is-utc-and-equal-bounds",
        ),
        pytest.param(
            {"start_time": JAN_1},
            "startTime eq '2016-01-01 12:00:00 AM' and endTime eq '2016-01-31 12:00:00 AM'",
            id="start-only-plus-30-days",
        ),
        pytest.param(
            {"end_time": JAN_1},
            "startTime eq '2015-12-02 12:00:00 AM' and endTime eq '2016-01-01 12:00:00 AM'",
            id="end-only-minus-30-days",
        ),
        pytest.param(
            {
                "status": "InProgress",
                "operation": "Backup",
                "backup_management_type": "AzureWorkload",
                "job_id": JOB_ID,
                "start_time": JAN_1,
                "end_time": datetime(2016, 1, 2, 23, 59, 59, tzinfo=UTC),
            },
            "status eq 'InProgress' and operation eq 'Backup' and backupManagementType eq 'AzureWorkload' and "
            f"jobId eq '{JOB_ID}' and startTime eq '2016-01-01 12:00:00 AM' and endTime eq '2016-01-02 11:59:59 PM'",
            id="all-clauses",
        ),
    ],
)
def test_build_job_filter(kwargs: dict[str, Any], expected: str | None) -> None:
    assert build_job_filter(**kwargs) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2016, 1, 1, tzinfo=UTC), "2016-01-01 12:00:00 AM"),
        (datetime(2016, 1, 1, 12, tzinfo=UTC), "2016-01-01 12:00:00 PM"),
        (datetime(2016, 1, 1, 9, 5, 7), "2016-01-01 09:05:07 AM"),
        (datetime(2016, 1, 1, 1, tzinfo=timezone(timedelta(hours=2))), "2015-12-31 11:00:00 PM"),
    ],
)
def test_format_filter_datetime(value: datetime, expected: str) -> None:
    assert format_filter_datetime(value) == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"status": "Canceled"}, r"status='Canceled': must be one of", id="operation-spelling"),
        pytest.param({"status": "inprogress"}, r"status='inprogress': must be one of", id="status-case"),
        pytest.param({"operation": "Snapshot"}, r"operation='Snapshot': must be one of", id="operation"),
        pytest.param(
            {"backup_management_type": "AzureVM"}, r"backupManagementType='AzureVM': must be one of", id="bmt"
        ),
        pytest.param({"job_id": "a/b"}, r"job_id='a/b': must not contain", id="job-id-slash"),
        pytest.param({"job_id": ""}, r"job_id='': must be a non-empty string", id="job-id-empty"),
        pytest.param({"job_id": " x"}, r"job_id=' x': must not contain", id="job-id-edge-space"),
        pytest.param(
            {"start_time": "2016-02-01T00:00:00Z", "end_time": "2016-01-01T00:00:00Z"},
            r"start_time='2016-02-01T00:00:00Z': is after end_time '2016-01-01T00:00:00Z'",
            id="start-after-end",
        ),
        pytest.param({"start_time": "yesterday"}, r"start_time='yesterday': is not an ISO-8601", id="start-garbage"),
        pytest.param({"end_time": 5}, r"end_time=5: must be a datetime", id="end-int"),
    ],
)
def test_build_job_filter_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(AzureBackupConfigError, match=match):
        build_job_filter(**kwargs)


def test_build_job_filter_rejects_quote_in_job_id() -> None:
    with pytest.raises(AzureBackupConfigError, match=r"job_id="):
        build_job_filter(job_id="x' or status eq 'Completed")


# --------------------------------------------------------------------------------------------------------------------
# 6. Connection settings and clouds
# --------------------------------------------------------------------------------------------------------------------


def settings(extras: Mapping[str, Any], *, login: str | None = None, has_password: bool = False) -> ConnectionSettings:
    return ConnectionSettings.from_connection(
        conn_id="azure_backup_default", login=login, has_password=has_password, extras=extras
    )


def test_minimal_connection_uses_public_cloud() -> None:
    s = settings({"subscription_id": SUB})
    assert s.subscription_id == SUB
    assert (s.tenant_id, s.client_id, s.uses_client_secret) == (None, None, False)
    assert s.cloud is CLOUDS["AzureCloud"]
    assert s.resource_manager_endpoint == "https://management.azure.com"
    assert s.authority_host == "https://login.microsoftonline.com"
    assert s.scope == "https://management.azure.com/.default"
    assert s.authority_is_custom is False


def test_service_principal_connection() -> None:
    s = settings(
        {
            "subscription_id": f" {SUB} ",
            "tenant_id": "tenant-1",
            "resource_group_name": "rg",
            "vault_name": "vault",
            "managed_identity_client_id": "",
            "workload_identity_tenant_id": "   ",
            "client_secret": SECRET,
        },
        login=" app-id ",
        has_password=True,
    )
    assert (s.subscription_id, s.tenant_id, s.client_id) == (SUB, "tenant-1", "app-id")
    assert s.uses_client_secret is True
    assert (s.resource_group_name, s.vault_name) == ("rg", "vault")
    assert (s.managed_identity_client_id, s.workload_identity_tenant_id) == (None, None)
    assert SECRET not in repr(s)


def test_legacy_extra_keys_are_accepted() -> None:
    s = settings(
        {
            "extra__azure_backup__subscription_id": SUB,
            "extra__azure_backup__tenant_id": "tenant-1",
            "extra__azure_backup__cloud_environment": "AzureChinaCloud",
            "extra__azure_backup__vault_name": "vault",
        },
        login="app",
        has_password=True,
    )
    assert (s.subscription_id, s.tenant_id, s.vault_name) == (SUB, "tenant-1", "vault")
    assert s.cloud.name == "AzureChinaCloud"


def test_new_extra_key_wins_over_legacy_key() -> None:
    s = settings({"subscription_id": "new", "extra__azure_backup__subscription_id": "old"})
    assert s.subscription_id == "new"


@pytest.mark.parametrize(
    ("extras", "login", "has_password", "match"),
    [
        pytest.param({}, None, False, r"subscription_id=None: connection 'azure_backup_default' needs", id="no-sub"),
        pytest.param({"subscription_id": "  "}, None, False, r"subscription_id=None", id="blank-sub"),
        pytest.param(
            {"subscription_id": SUB, "tenant_id": "t", "client_secret": SECRET},
            None,
            True,
            r"login=None: connection 'azure_backup_default' has a client secret but no client id",
            id="secret-without-login",
        ),
        pytest.param(
            {"subscription_id": SUB, "client_secret": SECRET},
            "app",
            True,
            r"tenant_id=None: connection 'azure_backup_default' has a client secret, which needs the extra 'tenant_id'",
            id="secret-without-tenant",
        ),
        pytest.param(
            {"subscription_id": SUB, "cloud_environment": "AzureGermanCloud"},
            None,
            False,
            r"cloud_environment='AzureGermanCloud': unknown cloud; "
            r"use one of AzureCloud, AzureUSGovernment, AzureChinaCloud",
            id="unknown-cloud",
        ),
        pytest.param(
            {"subscription_id": SUB, "resource_manager_endpoint": "http://localhost:8080"},
            None,
            False,
            r"resource_manager_endpoint='http://localhost:8080': must be an https:// URL",
            id="http-arm",
        ),
        pytest.param(
            {"subscription_id": SUB, "authority_host": "http://login.example.test"},
            None,
            False,
            r"authority_host='http://login.example.test': must be an https:// URL",
            id="http-authority",
        ),
        pytest.param(
            {"subscription_id": SUB, "resource_manager_endpoint": "management.azure.com"},
            None,
            False,
            r"resource_manager_endpoint='management.azure.com': must be an https:// URL",
            id="no-scheme",
        ),
    ],
)
def test_connection_errors_name_field_never_secret(
    extras: dict[str, Any], login: str | None, has_password: bool, match: str
) -> None:
    with pytest.raises(AzureBackupConfigError, match=match) as info:
        settings(extras, login=login, has_password=has_password)
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.value)


@pytest.mark.parametrize(
    ("name", "arm", "authority", "portal"),
    [
        (None, "https://management.azure.com", "https://login.microsoftonline.com", "https://portal.azure.com"),
        ("AzureCloud", "https://management.azure.com", "https://login.microsoftonline.com", "https://portal.azure.com"),
        ("azurecloud", "https://management.azure.com", "https://login.microsoftonline.com", "https://portal.azure.com"),
        (
            "AzurePublicCloud",
            "https://management.azure.com",
            "https://login.microsoftonline.com",
            "https://portal.azure.com",
        ),
        (
            "AzureUSGovernment",
            "https://management.usgovcloudapi.net",
            "https://login.microsoftonline.us",
            "https://portal.azure.us",
        ),
        (
            "AzureGovernment",
            "https://management.usgovcloudapi.net",
            "https://login.microsoftonline.us",
            "https://portal.azure.us",
        ),
        (
            "AzureChinaCloud",
            "https://management.chinacloudapi.cn",
            "https://login.chinacloudapi.cn",
            "https://portal.azure.cn",
        ),
        (
            "AZURECHINA",
            "https://management.chinacloudapi.cn",
            "https://login.chinacloudapi.cn",
            "https://portal.azure.cn",
        ),
    ],
)
def test_clouds(name: str | None, arm: str, authority: str, portal: str) -> None:
    extras = {"subscription_id": SUB} | ({"cloud_environment": name} if name else {})
    s = settings(extras)
    assert (s.resource_manager_endpoint, s.authority_host, s.cloud.portal) == (arm, authority, portal)
    assert s.scope == f"{arm}/.default"
    assert s.authority_is_custom is False
    assert resolve_cloud(name) is s.cloud


@pytest.mark.parametrize(
    ("extras", "arm", "authority", "custom"),
    [
        pytest.param(
            {"resource_manager_endpoint": "https://localhost:8443/", "authority_host": "https://localhost:9443//"},
            "https://localhost:8443",
            "https://localhost:9443",
            True,
            id="emulator",
        ),
        pytest.param(
            {"resource_manager_endpoint": " https://arm.example.test/prefix/ "},
            "https://arm.example.test/prefix",
            "https://login.microsoftonline.com",
            False,
            id="path-kept-trailing-slash-dropped",
        ),
        pytest.param(
            {"cloud_environment": "AzureUSGovernment", "authority_host": "https://login.microsoftonline.com/"},
            "https://management.usgovcloudapi.net",
            "https://login.microsoftonline.com",
            False,
            id="known-authority-override",
        ),
    ],
)
def test_endpoint_overrides(extras: dict[str, str], arm: str, authority: str, custom: bool) -> None:
    s = settings({"subscription_id": SUB, **extras})
    assert s.resource_manager_endpoint == arm
    assert s.authority_host == authority
    assert s.scope == f"{arm}/.default"
    assert s.authority_is_custom is custom


# --------------------------------------------------------------------------------------------------------------------
# 7. URL building
# --------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "method", "path", "expected"),
    [
        pytest.param(lambda api: api.trigger_backup(ITEM, VM_BODY), "POST", f"{ITEM_PATH}/backup", {202}, id="trigger"),
        pytest.param(
            lambda api: api.get_item_operation_status(ITEM, OP_ID),
            "GET",
            f"{ITEM_PATH}/operationsStatus/{OP_ID}",
            {200},
            id="op-status",
        ),
        pytest.param(
            lambda api: api.get_job(VAULT, JOB_ID), "GET", f"{VAULT_PATH}/backupJobs/{JOB_ID}", {200}, id="job"
        ),
        pytest.param(lambda api: api.list_jobs(VAULT, None), "GET", f"{VAULT_PATH}/backupJobs", {200}, id="jobs"),
        pytest.param(
            lambda api: api.cancel_job(VAULT, JOB_ID),
            "POST",
            f"{VAULT_PATH}/backupJobs/{JOB_ID}/cancel",
            {202},
            id="cancel",
        ),
        pytest.param(lambda api: api.get_protected_item(ITEM), "GET", ITEM_PATH, {200}, id="item"),
        pytest.param(
            lambda api: api.list_protected_items(VAULT, None),
            "GET",
            f"{VAULT_PATH}/backupProtectedItems",
            {200},
            id="items",
        ),
        pytest.param(
            lambda api: api.list_recovery_points(ITEM, None), "GET", f"{ITEM_PATH}/recoveryPoints", {200}, id="points"
        ),
        pytest.param(
            lambda api: api.trigger_restore(ITEM, "348916168024334", {"properties": {}}),
            "POST",
            f"{ITEM_PATH}/recoveryPoints/348916168024334/restore",
            {202},
            id="restore",
        ),
    ],
)
def test_request_urls(build: Any, method: str, path: str, expected: set[int]) -> None:
    request: ApiRequest = build(API)
    assert request.method == method
    assert request.url == f"{ARM}{path}?api-version={DEFAULT_API_VERSION}"
    assert request.expected == expected
    assert ";" not in request.url
    custom: ApiRequest = build(BackupApi(ARM, api_version="2025-08-01"))
    assert custom.url == f"{ARM}{path}?api-version=2025-08-01"


def test_default_api_version() -> None:
    assert DEFAULT_API_VERSION == "2026-10-01"
    assert API.api_version == DEFAULT_API_VERSION


def test_trigger_carries_body() -> None:
    assert POST_BACKUP.body == VM_BODY


def test_vault_uses_vault_api_version() -> None:
    request = API.get_vault(VAULT)
    assert request.url == f"{ARM}{VAULT_PATH}?api-version={VAULT_API_VERSION}"


def test_url_api_version_per_call() -> None:
    assert API.url("/x", api_version="2019-05-13") == f"{ARM}/x?api-version=2019-05-13"


@pytest.mark.parametrize(
    ("name", "encoded"),
    [("a;b", "a%3Bb"), ("a b", "a%20b"), ("q?x", "q%3Fx"), ("h#x", "h%23x"), ("p%2F", "p%252F"), ("é", "%C3%A9")],
)
def test_path_segments_are_percent_encoded(name: str, encoded: str) -> None:
    assert API.get_job(VAULT, name).url == f"{ARM}{VAULT_PATH}/backupJobs/{encoded}?api-version={DEFAULT_API_VERSION}"


def test_filter_is_encoded() -> None:
    odata = "status eq 'InProgress' and startTime eq '2016-01-01 12:00:00 AM'"
    request = API.list_jobs(VAULT, odata)
    assert "%20eq%20%27InProgress%27" in request.url
    assert " " not in request.url
    assert "'" not in request.url
    assert query_of(request.url) == {"api-version": [DEFAULT_API_VERSION], "$filter": [odata]}
    for build in (API.list_protected_items, lambda v, f: API.list_recovery_points(ITEM, f)):
        assert query_of(build(VAULT, odata).url)["$filter"] == [odata]


@pytest.mark.parametrize(
    ("url", "host"),
    [
        pytest.param("https://evil.example.com/subscriptions/x", "evil.example.com", id="other-host"),
        pytest.param("https://management.azure.com.evil.com/x", "management.azure.com.evil.com", id="suffix-host"),
        pytest.param("https://management.azure.com@evil.com/x", "evil.com", id="userinfo"),  # userinfo never echoed
        pytest.param("https://management.azure.com:8443/x", "management.azure.com:8443", id="other-port"),
        pytest.param("http://management.azure.com/x", "management.azure.com", id="http"),
        pytest.param("/subscriptions/x", "/subscriptions/x", id="relative"),
    ],
)
def test_follow_url_refuses_foreign_hosts(url: str, host: str) -> None:
    match = re.escape(f"Refusing to follow Location on host {host!r}") + r".*'management\.azure\.com'"
    with pytest.raises(AzureBackupForeignHostError, match=match) as info:
        API.follow_url(url, "Location")
    assert (info.value.source, info.value.url_host, info.value.arm_host) == ("Location", host, "management.azure.com")


@pytest.mark.parametrize(
    "url",
    [
        "https://management.azure.com/x?api-version=2016-12-01",
        "https://MANAGEMENT.Azure.COM/x?api-version=2016-12-01",
        "https://management.azure.com:443/x?api-version=2016-12-01",
    ],
)
def test_follow_url_accepts_arm_host_and_keeps_url(url: str) -> None:
    assert API.follow_url(url, "Azure-AsyncOperation") == url


def test_follow_url_on_custom_port() -> None:
    api = BackupApi("https://localhost:8443")
    assert api.follow_url("https://localhost:8443/x", "nextLink") == "https://localhost:8443/x"
    for other in ("https://localhost/x", "https://localhost:9443/x"):
        with pytest.raises(AzureBackupForeignHostError, match=r"nextLink on host"):
            api.follow_url(other, "nextLink")


def test_replace_api_version_for_next_link() -> None:
    next_link = example_body("ListJobsWithStartTimeAndEndTimeFilters.json")["nextLink"]
    followed = API.follow_url(next_link, "nextLink", replace_api_version=True)
    original = dict(parse_qsl(urlsplit(next_link).query))
    query = parse_qsl(urlsplit(followed).query)
    assert query[0] == ("api-version", DEFAULT_API_VERSION)
    assert [k for k, _ in query].count("api-version") == 1
    assert dict(query[1:]) == {k: v for k, v in original.items() if k != "api-version"}
    assert followed.startswith(f"{ARM}{urlsplit(next_link).path}?")
    request = API.follow(next_link, "nextLink", (200,), replace_api_version=True)
    assert (request.method, request.url, request.expected) == ("GET", followed, {200})


def test_follow_url_with_malformed_port_is_refused() -> None:
    with pytest.raises(AzureBackupForeignHostError, match=r"Location"):
        API.follow_url("https://management.azure.com:bad/x", "Location")


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (None, r"job_id=None: must be a non-empty string"),
        ("", r"job_id='': must be a non-empty string"),
        ("a/b", r"job_id='a/b': must not contain '/'"),
        ("ab ", r"job_id='ab ': must not contain"),
        ("a\nb", r"job_id='a\\nb': must not contain"),
    ],
)
def test_require_name_errors(value: Any, match: str) -> None:
    with pytest.raises(AzureBackupConfigError, match=match):
        require_name("job_id", value)


@pytest.mark.parametrize("value", [".", ".."])
def test_require_name_rejects_dot_segments(value: str) -> None:
    with pytest.raises(AzureBackupConfigError, match=r"job_id="):
        require_name("job_id", value)


def test_redact_url_hides_skip_token() -> None:
    next_link = example_body("ListJobsWithStartTimeAndEndTimeFilters.json")["nextLink"]
    redacted = redact_url(next_link)
    assert "ContinuationToken" not in redacted
    query = dict(parse_qsl(urlsplit(redacted).query))
    assert query["$skiptoken"] == "…"
    assert query["api-version"] == "2017-07-01"
    assert query["$filter"].startswith("startTime eq '2016-01-01")


# --------------------------------------------------------------------------------------------------------------------
# 8. call(): retry policy and errors
# --------------------------------------------------------------------------------------------------------------------

REQ_HEADERS = {"x-ms-request-id": "req-1"}


def test_call_returns_expected_status() -> None:
    driver = Driver(resp(200, job_body(), REQ_HEADERS))
    response = driver.run(call(GET_JOB, POLICY))
    assert response.status == 200
    assert response.request_id == "req-1"
    assert driver.steps == ["GET"]
    assert driver.refresh_flags == [False]


@pytest.mark.parametrize(
    ("headers", "sleep"),
    [
        pytest.param({"Retry-After": "2"}, 2.0, id="retry-after"),
        pytest.param({"Retry-After": "1000"}, 120.0, id="capped"),
        pytest.param({"retry-after-ms": "1500", "Retry-After": "9"}, 1.5, id="retry-after-ms-wins"),
        pytest.param({"x-ms-retry-after-ms": "250"}, 0.25, id="x-ms-retry-after-ms"),
        pytest.param({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0, id="http-date-past"),
        pytest.param({"Retry-After": "Fri, 01 Jan 2100 00:00:00 GMT"}, 120.0, id="http-date-future-capped"),
        pytest.param({"Retry-After": "soon"}, 1.0, id="garbage-falls-back-to-backoff"),
        pytest.param({}, 1.0, id="no-header-backoff"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_429_retried_honouring_retry_after(method: str, headers: dict[str, str], sleep: float) -> None:
    request = GET_JOB if method == "GET" else POST_BACKUP
    ok = 200 if method == "GET" else 202
    driver = Driver(resp(429, arm_error("TooManyRequests", "slow down"), headers), resp(ok))
    assert driver.run(call(request, POLICY)).status == ok
    assert driver.steps == [method, f"sleep:{sleep:g}", method]


def test_max_retry_after_is_configurable() -> None:
    driver = Driver(resp(429, None, {"Retry-After": "60"}), resp(200))
    driver.run(call(GET_JOB, RetryPolicy(max_retry_after=7)))
    assert driver.sleeps == [7.0]


@pytest.mark.parametrize(
    ("status", "exc_type", "code"),
    [
        (429, AzureBackupThrottledError, "TooManyRequests"),
        (503, AzureBackupThrottledError, "ServiceUnavailable"),
        (500, AzureBackupApiError, "InternalServerError"),
        (502, AzureBackupApiError, "BadGateway"),
        (504, AzureBackupApiError, "GatewayTimeout"),
        (408, AzureBackupApiError, "RequestTimeout"),
    ],
)
def test_get_retry_is_bounded_then_raises(status: int, exc_type: type[AzureBackupApiError], code: str) -> None:
    outcomes = [resp(status, arm_error(code, "try later"), {"x-ms-request-id": f"req-{i}"}) for i in range(4)]
    driver = Driver(*outcomes)
    with pytest.raises(exc_type, match=rf"HTTP {status} {code}: try later .*x-ms-request-id=req-3\]") as info:
        driver.run(call(GET_JOB, POLICY))
    err = info.value
    assert type(err) is exc_type
    assert (err.http_status, err.error_code, err.error_message, err.request_id) == (status, code, "try later", "req-3")
    assert (err.method, err.url) == ("GET", GET_JOB.url)
    assert driver.steps == ["GET", "sleep:1", "GET", "sleep:2", "GET", "sleep:4", "GET"]


def test_get_retry_recovers() -> None:
    driver = Driver(resp(500), resp(502), resp(200, job_body()))
    assert driver.run(call(GET_JOB, POLICY)).status == 200
    assert driver.steps == ["GET", "sleep:1", "GET", "sleep:2", "GET"]


def test_backoff_is_capped() -> None:
    policy = RetryPolicy(max_attempts=6, backoff_base=1.0, backoff_max=3.0)
    driver = Driver(*[resp(503)] * 6)
    with pytest.raises(AzureBackupThrottledError, match=r"HTTP 503 \(no code\)"):
        driver.run(call(GET_JOB, policy))
    assert driver.sleeps == [1, 2, 3, 3, 3]


def test_single_attempt_policy_does_not_retry() -> None:
    driver = Driver(resp(503, arm_error("ServiceUnavailable", "busy")))
    with pytest.raises(AzureBackupThrottledError, match=r"HTTP 503 ServiceUnavailable: busy"):
        driver.run(call(GET_JOB, RetryPolicy(max_attempts=1)))
    assert driver.steps == ["GET"]


@pytest.mark.parametrize(
    ("status", "exc_type"),
    [
        (503, AzureBackupThrottledError),
        (500, AzureBackupApiError),
        (502, AzureBackupApiError),
        (408, AzureBackupApiError),
    ],
)
def test_post_server_errors_are_not_retried(status: int, exc_type: type[AzureBackupApiError]) -> None:
    driver = Driver(resp(status, arm_error("Oops", "server side"), REQ_HEADERS), resp(202))
    with pytest.raises(exc_type, match=rf"HTTP {status} Oops: server side \[POST ") as info:
        driver.run(call(POST_BACKUP, POLICY))
    assert type(info.value) is exc_type
    assert info.value.request_id == "req-1"
    assert driver.steps == ["POST"]


@pytest.mark.parametrize("kind", ["reset", "timeout"])
def test_post_transport_failure_after_sending_is_not_retried(kind: TransportFailureKind) -> None:
    driver = Driver(TransportFailure(kind, "connection aborted"), resp(202))
    with pytest.raises(
        AzureBackupTransportError, match=rf"failed \({kind}\): connection aborted\. The service may have acted"
    ) as info:
        driver.run(call(POST_BACKUP, POLICY))
    assert info.value.may_have_acted is True
    assert (info.value.method, info.value.kind) == ("POST", kind)
    assert driver.steps == ["POST"]


def test_post_connect_failure_is_retried() -> None:
    driver = Driver(TransportFailure("connect", "refused"), TransportFailure("connect", "refused"), resp(202))
    assert driver.run(call(POST_BACKUP, POLICY)).status == 202
    assert driver.steps == ["POST", "sleep:1", "POST", "sleep:2", "POST"]


@pytest.mark.parametrize("kind", ["connect", "reset", "timeout"])
def test_get_transport_failures_are_retried(kind: TransportFailureKind) -> None:
    driver = Driver(TransportFailure(kind, "boom"), resp(200))
    assert driver.run(call(GET_JOB, POLICY)).status == 200
    assert driver.steps == ["GET", "sleep:1", "GET"]


def test_get_transport_failures_exhaust_attempts() -> None:
    driver = Driver(*[TransportFailure("reset", "peer reset")] * 4)
    with pytest.raises(AzureBackupTransportError, match=r"GET .* failed \(reset\): peer reset\.$") as info:
        driver.run(call(GET_JOB, POLICY))
    assert info.value.may_have_acted is True
    assert "may have acted" not in str(info.value)
    assert len(driver.sends) == 4


def test_post_connect_failures_exhaust_attempts() -> None:
    driver = Driver(*[TransportFailure("connect", "refused")] * 4)
    with pytest.raises(AzureBackupTransportError, match=r"POST .* failed \(connect\): refused\.$") as info:
        driver.run(call(POST_BACKUP, POLICY))
    assert info.value.may_have_acted is False
    assert len(driver.sends) == 4


@pytest.mark.parametrize("request_", [GET_JOB, POST_BACKUP], ids=["GET", "POST"])
def test_401_refreshes_the_token_once(request_: ApiRequest) -> None:
    ok = 200 if request_.method == "GET" else 202
    driver = Driver(resp(401, arm_error("ExpiredAuthenticationToken", "expired")), resp(ok))
    assert driver.run(call(request_, POLICY)).status == ok
    assert driver.refresh_flags == [False, True]
    assert driver.sleeps == []


def test_second_401_raises_auth_error() -> None:
    driver = Driver(
        resp(401, arm_error("ExpiredAuthenticationToken", "expired")),
        resp(401, arm_error("InvalidAuthenticationToken", "still bad"), REQ_HEADERS),
    )
    with pytest.raises(AzureBackupAuthError, match=r"HTTP 401 InvalidAuthenticationToken: still bad") as info:
        driver.run(call(GET_JOB, POLICY))
    assert info.value.request_id == "req-1"
    assert driver.refresh_flags == [False, True]


def test_token_is_refreshed_only_once_per_call() -> None:
    driver = Driver(resp(401), resp(503), resp(401, arm_error("AuthenticationFailed", "no")))
    with pytest.raises(AzureBackupAuthError, match=r"HTTP 401 AuthenticationFailed"):
        driver.run(call(GET_JOB, POLICY))
    assert driver.refresh_flags == [False, True, False]


def test_403_is_not_refreshed() -> None:
    driver = Driver(resp(403, arm_error("AuthorizationFailed", "no role")))
    with pytest.raises(AzureBackupAuthError, match=r"HTTP 403 AuthorizationFailed: no role"):
        driver.run(call(GET_JOB, POLICY))
    assert driver.refresh_flags == [False]


def test_404_raises_not_found() -> None:
    body = arm_error("BMSUserErrorDataSourceObjectNotFound", "Item not found.")
    driver = Driver(resp(404, body, REQ_HEADERS))
    with pytest.raises(
        AzureBackupNotFoundError, match=r"HTTP 404 BMSUserErrorDataSourceObjectNotFound: Item not found"
    ):
        driver.run(call(GET_JOB, POLICY))
    assert driver.steps == ["GET"]


@pytest.mark.parametrize("code", ["UserErrorBackupOperationInProgress", "SystemBackupOperationInProgress"])
@pytest.mark.parametrize("status", [400, 409])
def test_operation_in_progress(code: str, status: int) -> None:
    driver = Driver(resp(status, arm_error(code, "Another backup is running.")))
    with pytest.raises(AzureBackupOperationInProgressError, match=rf"HTTP {status} {code}: Another backup"):
        driver.run(call(POST_BACKUP, POLICY))


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        pytest.param(b"<html>Bad Gateway</html>", None, "<html>Bad Gateway</html>", id="html"),
        pytest.param(b"", None, "(empty body)", id="empty"),
        pytest.param(b"\xff\xfe", None, "\ufffd\ufffd", id="not-utf8"),
        pytest.param(
            {"error": "invalid_client", "error_description": "AADSTS7000215"},
            None,
            '"error": "invalid_client"',
            id="oauth",
        ),
        pytest.param({"code": "Flat", "message": "no envelope"}, "Flat", "no envelope", id="flat"),
        pytest.param({"error": {"code": "OnlyCode"}}, "OnlyCode", '"code": "OnlyCode"', id="no-message"),
    ],
)
def test_error_bodies(body: Any, code: str | None, message: str) -> None:
    driver = Driver(resp(400, body))
    with pytest.raises(AzureBackupApiError, match=re.escape(message)) as info:
        driver.run(call(POST_BACKUP, POLICY))
    assert info.value.error_code == code
    assert info.value.http_status == 400


def test_error_url_redacts_skip_token() -> None:
    next_link = example_body("ListJobsWithStartTimeAndEndTimeFilters.json")["nextLink"]
    request = API.follow(next_link, "nextLink", (200,))
    error = error_from_response(request, resp(400, arm_error("BadRequest", "bad")))
    assert "ContinuationToken" not in str(error)
    assert dict(parse_qsl(urlsplit(error.url).query))["$skiptoken"] == "…"


def test_call_rejects_missing_outcome() -> None:
    flow = call(GET_JOB, POLICY)
    next(flow)
    with pytest.raises(RuntimeError, match=r"transport returned no outcome"):
        flow.send(None)


@pytest.mark.parametrize(
    "body", [b"not json", b"{}", b"[1, 2]", b'{"properties": {"extendedInfo": {"propertyBag": 3}}}']
)
def test_call_parsed_turns_a_bad_success_body_into_an_api_error(body: bytes) -> None:
    driver = Driver(resp(200, body, REQ_HEADERS))
    with pytest.raises(AzureBackupApiError, match=r"HTTP 200 \(no code\): unexpected response body") as info:
        driver.run(call_parsed(GET_JOB, POLICY, parse_job))
    assert info.value.request_id == "req-1"


def test_get_job_flow_parses_job() -> None:
    driver = Driver(resp(200, example_body("GetJobDetails.json")))
    job = driver.run(get_job(API, VAULT, ZERO_ID))
    assert job.status == "InProgress"
    assert driver.urls == [API.get_job(VAULT, ZERO_ID).url]


def test_get_job_flow_validates_id_before_sending() -> None:
    driver = Driver()
    with pytest.raises(AzureBackupConfigError, match=r"job_id='a/b'"):
        driver.run(get_job(API, VAULT, "a/b"))
    assert driver.actions == []


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"retry-after": "60"}, 60.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after": "-5"}, 0.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"x-ms-retry-after-ms": "250"}, 0.25),
        ({"retry-after-ms": "abc", "retry-after": "7"}, 7.0),
        ({"retry-after": format_datetime(datetime(2024, 5, 1, 12, 1, tzinfo=UTC), usegmt=True)}, 60.0),
        ({"retry-after": format_datetime(datetime(2024, 5, 1, 11, 0, tzinfo=UTC), usegmt=True)}, 0.0),
        ({"retry-after": "garbage"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC).timestamp()
    assert parse_retry_after(resp(202, None, headers), now=now) == expected


@pytest.mark.parametrize(
    ("policy", "match"),
    [
        (RetryPolicy(max_attempts=0), r"max_attempts=0: must be at least 1"),
        (RetryPolicy(backoff_base=-1), r"backoff_base=-1: must be a non-negative number"),
        (RetryPolicy(backoff_max=float("nan")), r"backoff_max=nan"),
        (RetryPolicy(max_retry_after="60"), r"max_retry_after='60'"),  # type: ignore[arg-type]
    ],
)
def test_retry_policy_validation(policy: RetryPolicy, match: str) -> None:
    with pytest.raises(AzureBackupConfigError, match=match):
        policy.validate()


def test_retry_policy_validate_returns_itself() -> None:
    assert POLICY.validate() is POLICY


# --------------------------------------------------------------------------------------------------------------------
# 9. Flows
# --------------------------------------------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wait(clock: FakeClock) -> WaitSettings:
    return WaitSettings(poll_interval=5.0, timeout=600.0, clock=clock)


def accepted(
    *, status_url: str | None = STATUS_URL, location: str | None = RESULT_URL, retry_after: str | None = "60"
) -> ApiResponse:
    headers = {"x-ms-request-id": "trigger-req"}
    if status_url:
        headers["Azure-AsyncOperation"] = status_url
    if location:
        headers["Location"] = location
    if retry_after:
        headers["Retry-After"] = retry_after
    return resp(202, None, headers)


def test_trigger_and_follow_with_spec_example_headers(clock: FakeClock, wait: WaitSettings) -> None:
    headers = example_headers("TriggerBackup_Post.json")
    status_url = headers["azure-asyncoperation"]
    driver = Driver(
        resp(202, None, headers),
        resp(200, op_status("InProgress"), {"Retry-After": "10"}),
        resp(200, op_status("Succeeded", job_id=JOB_ID)),
        clock=clock,
    )
    result = driver.run(trigger_and_follow(API, POST_BACKUP, ITEM, wait))
    assert result == TriggeredOperation(operation_id=ZERO_ID, job_id=JOB_ID)
    assert driver.steps == ["POST", "sleep:60", "GET", "sleep:10", "GET"]
    # The api-version inside a returned header URL is opaque: the status URL is followed exactly as given.
    assert driver.urls == [POST_BACKUP.url, status_url, status_url]
    assert driver.sends[0].request.body == VM_BODY
    assert driver.refresh_flags == [False, False, False]


def test_trigger_and_follow_polls_at_poll_interval_without_retry_after(clock: FakeClock) -> None:
    wait = WaitSettings(poll_interval=3.0, timeout=600.0, clock=clock)
    driver = Driver(
        accepted(retry_after=None),
        resp(200, op_status("InProgress")),
        resp(200, op_status("InProgress"), {"Retry-After": "500"}),
        resp(200, op_status("Succeeded", job_ids=[JOB_ID, "other"])),
        clock=clock,
    )
    result = driver.run(trigger_and_follow(API, POST_BACKUP, ITEM, wait))
    assert result == TriggeredOperation(operation_id=OP_ID, job_id=JOB_ID)
    assert driver.steps == ["POST", "sleep:3", "GET", "sleep:3", "GET", "sleep:120", "GET"]


def test_trigger_and_follow_with_location_only(clock: FakeClock, wait: WaitSettings) -> None:
    driver = Driver(
        accepted(status_url=None),
        resp(202, None, {"Location": RESULT_URL, "Retry-After": "30"}),
        resp(202),
        resp(204),
        resp(200, op_status("Succeeded", job_id=JOB_ID)),
        clock=clock,
    )
    result = driver.run(trigger_and_follow(API, POST_BACKUP, ITEM, wait))
    assert result == TriggeredOperation(operation_id=OP_ID, job_id=JOB_ID)
    # Location polls honour each Retry-After (else poll_interval); after the 204 the item's operationsStatus is
    # read for the jobId at once.
    assert driver.steps == ["POST", "sleep:60", "GET", "sleep:30", "GET", "sleep:5", "GET", "GET"]
    assert driver.urls[1:4] == [RESULT_URL] * 3
    assert driver.urls[4] == f"{ARM}{ITEM_PATH}/operationsStatus/{OP_ID}?api-version={DEFAULT_API_VERSION}"


def test_trigger_and_follow_retries_a_throttled_poll(clock: FakeClock, wait: WaitSettings) -> None:
    driver = Driver(
        accepted(),
        resp(429, None, {"Retry-After": "4"}),
        resp(200, op_status("Succeeded", job_id=JOB_ID)),
        clock=clock,
    )
    assert driver.run(trigger_and_follow(API, POST_BACKUP, ITEM, wait)).job_id == JOB_ID
    assert driver.steps == ["POST", "sleep:60", "GET", "sleep:4", "GET"]


@pytest.mark.parametrize("status", ["Failed", "Canceled", "Invalid"])
def test_failed_operation_raises(status: str, clock: FakeClock, wait: WaitSettings) -> None:
    error = {"code": "UserErrorVmNotFound", "message": "The VM is gone."}
    driver = Driver(accepted(), resp(200, op_status(status, error=error)), clock=clock)
    match = re.escape(f"Azure Backup operation {OP_ID} ended {status}: UserErrorVmNotFound: The VM is gone.")
    with pytest.raises(AzureBackupOperationError, match=match) as info:
        driver.run(trigger_and_follow(API, POST_BACKUP, ITEM, wait))
    assert (info.value.operation_id, info.value.status, info.value.error_code) == (OP_ID, status, "UserErrorVmNotFound")


def test_succeeded_without_job_id_raises(clock: FakeClock, wait: WaitSettings) -> None:
    driver = Driver(accepted(), resp(200, op_status("Succeeded")), clock=clock)
    # Accepted: a backup may be running, so the caller looks for it rather than triggering again.
    with pytest.raises(
        AzureBackupAcceptedError, match=rf"{OP_ID} ended Succeeded: \(no code\): .*returned no jobId"
    ) as e:
        driver.run(trigger_and_follow(API, POST_BACKUP, ITEM, wait))
    assert e.value.operation_id == OP_ID and isinstance(e.value.cause, AzureBackupOperationError)


@pytest.mark.parametrize(
    ("response", "source"),
    [
        (accepted(status_url="https://evil.example.com/operationsStatus/x"), "Azure-AsyncOperation"),
        (accepted(status_url=None, location="https://evil.example.com/operationResults/x"), "Location"),
    ],
)
def test_foreign_operation_url_is_never_contacted(
    response: ApiResponse, source: str, clock: FakeClock, wait: WaitSettings
) -> None:
    driver = Driver(response, clock=clock)
    # Azure accepted the POST, so the failure says so (the caller must look for the job, not trigger again).
    with pytest.raises(
        AzureBackupAcceptedError, match=rf"Refusing to follow {source} on host 'evil\.example\.com'"
    ) as e:
        driver.run(trigger_and_follow(API, POST_BACKUP, ITEM, wait))
    assert isinstance(e.value.cause, AzureBackupForeignHostError)
    assert driver.steps == ["POST"]
    assert all("evil" not in url for url in driver.urls)


def test_202_without_headers_raises(clock: FakeClock, wait: WaitSettings) -> None:
    driver = Driver(resp(202, None, REQ_HEADERS), clock=clock)
    with pytest.raises(AzureBackupAcceptedError, match=r"202 without Azure-AsyncOperation or Location header") as info:
        driver.run(trigger_and_follow(API, POST_BACKUP, ITEM, wait))
    assert info.value.operation_id == ""
    assert isinstance(info.value.cause, AzureBackupApiError) and info.value.cause.request_id == "req-1"


def test_operation_poll_with_non_status_body_raises(clock: FakeClock, wait: WaitSettings) -> None:
    driver = Driver(accepted(), resp(200, {"unexpected": True}), clock=clock)
    with pytest.raises(
        AzureBackupAcceptedError, match=r"HTTP 200 \(no code\): unexpected response body: not an operation status"
    ) as info:
        driver.run(trigger_and_follow(API, POST_BACKUP, ITEM, wait))
    assert info.value.operation_id == OP_ID and isinstance(info.value.cause, AzureBackupApiError)


def test_operation_timeout(clock: FakeClock) -> None:
    wait = WaitSettings(poll_interval=5.0, timeout=12.0, clock=clock)
    driver = Driver(accepted(retry_after=None), *[resp(200, op_status("InProgress"))] * 3, clock=clock)
    with pytest.raises(AzureBackupAcceptedError, match=rf"operation {OP_ID} still InProgress after 12 s") as info:
        driver.run(trigger_and_follow(API, POST_BACKUP, ITEM, wait))
    assert isinstance(info.value.cause, AzureBackupTimeoutError)
    assert driver.steps == ["POST", "sleep:5", "GET", "sleep:5", "GET", "sleep:5", "GET"]


def test_location_timeout(clock: FakeClock) -> None:
    wait = WaitSettings(poll_interval=5.0, timeout=8.0, clock=clock)
    handle = parse_operation_handle(accepted(status_url=None, retry_after=None))
    driver = Driver(resp(202), resp(202), clock=clock)
    with pytest.raises(AzureBackupTimeoutError, match=rf"operation {OP_ID} still running after 8 s"):
        driver.run(wait_for_location(API, RESULT_URL, handle, wait))
    assert driver.steps == ["sleep:5", "GET", "sleep:5", "GET"]


def test_follow_operation_needs_status_url_or_item(wait: WaitSettings) -> None:
    handle = parse_operation_handle(accepted(status_url=None))
    with pytest.raises(AzureBackupApiError, match=r"operation has no status URL and no item"):
        Driver().run(follow_operation(API, handle, None, wait))


def test_poll_delay_has_a_floor(clock: FakeClock) -> None:
    wait = WaitSettings(poll_interval=5.0, timeout=600.0, clock=clock)
    driver = Driver(
        accepted(retry_after="0"),
        *[resp(200, op_status("InProgress"), {"Retry-After": "0"})] * 3,
        resp(200, op_status("Succeeded", job_id=JOB_ID)),
        clock=clock,
    )
    driver.run(trigger_and_follow(API, POST_BACKUP, ITEM, wait))
    assert all(seconds > 0 for seconds in driver.sleeps), driver.sleeps


def test_list_pages_follows_next_link() -> None:
    first = example_body("ListJobsWithStartTimeAndEndTimeFilters.json")
    second = {"value": [job_body("Failed")]}
    driver = Driver(resp(200, first), resp(200, second))
    jobs = driver.run(list_pages(API, API.list_jobs(VAULT, None), parse_job, None))
    assert [j.status for j in jobs] == ["InProgress", "Completed", "Failed"]
    assert driver.steps == ["GET", "GET"]
    next_query = query_of(driver.urls[1])
    assert next_query["api-version"] == [DEFAULT_API_VERSION]
    assert next_query["$skiptoken"] == query_of(first["nextLink"])["$skiptoken"]
    assert next_query["$filter"] == ["startTime eq '2016-01-01 00:00:00 AM' and endTime eq '2017-11-29 00:00:00 AM'"]


@pytest.mark.parametrize(("limit", "sends", "count"), [(1, 1, 1), (2, 1, 2), (3, 2, 3), (10, 3, 5), (None, 3, 5)])
def test_list_pages_limit(limit: int | None, sends: int, count: int) -> None:
    link = f"{ARM}{VAULT_PATH}/backupJobs?api-version=2017-07-01&$skiptoken="
    pages = [
        {"value": [job_body(), job_body()], "nextLink": link + "p2"},
        {"value": [job_body(), job_body()], "nextLink": link + "p3"},
        {"value": [job_body()], "nextLink": None},
    ]
    driver = Driver(*[resp(200, p) for p in pages])
    assert len(driver.run(list_pages(API, API.list_jobs(VAULT, None), parse_job, limit))) == count
    assert len(driver.sends) == sends


def test_list_pages_refuses_foreign_next_link() -> None:
    page = {"value": [job_body()], "nextLink": "https://evil.example.com/backupJobs?$skiptoken=x"}
    driver = Driver(resp(200, page))
    with pytest.raises(AzureBackupForeignHostError, match=r"Refusing to follow nextLink on host 'evil\.example\.com'"):
        driver.run(list_pages(API, API.list_jobs(VAULT, None), parse_job, None))
    assert driver.steps == ["GET"]


def test_cancel_job_follows_location_with_spec_examples(clock: FakeClock, wait: WaitSettings) -> None:
    trigger_headers = example_headers("TriggerCancelJob.json")
    poll_headers = example_headers("CancelJobOperationResult.json")
    driver = Driver(resp(202, None, trigger_headers), resp(202, None, poll_headers), resp(204), clock=clock)
    assert driver.run(cancel_job(API, VAULT, ZERO_ID, wait)) is None
    assert driver.steps == ["POST", "sleep:60", "GET", "sleep:60", "GET"]
    assert driver.urls == [
        API.cancel_job(VAULT, ZERO_ID).url,
        trigger_headers["location"],
        trigger_headers["location"],
    ]


def test_cancel_job_accepts_200_from_operation_results(clock: FakeClock, wait: WaitSettings) -> None:
    driver = Driver(accepted(status_url=None, retry_after="1"), resp(200, {}), clock=clock)
    driver.run(cancel_job(API, VAULT, JOB_ID, wait))
    assert driver.steps == ["POST", "sleep:1", "GET"]


def test_cancel_job_with_status_url_only(clock: FakeClock, wait: WaitSettings) -> None:
    driver = Driver(accepted(location=None, retry_after="2"), resp(200, op_status("Succeeded")), clock=clock)
    driver.run(cancel_job(API, VAULT, JOB_ID, wait))
    assert driver.steps == ["POST", "sleep:2", "GET"]
    assert driver.urls[1] == STATUS_URL


def test_cancel_job_validates_id_before_sending(wait: WaitSettings) -> None:
    driver = Driver()
    with pytest.raises(AzureBackupConfigError, match=r"job_id='../x'"):
        driver.run(cancel_job(API, VAULT, "../x", wait))
    assert driver.actions == []


def test_cancel_job_400_not_retried(wait: WaitSettings) -> None:
    driver = Driver(resp(400, arm_error("BMSUserErrorJobNotCancellable", "cannot cancel")))
    with pytest.raises(AzureBackupApiError, match=r"HTTP 400 BMSUserErrorJobNotCancellable: cannot cancel"):
        driver.run(cancel_job(API, VAULT, JOB_ID, wait))
    assert driver.steps == ["POST"]


CLASSIC_ITEM = parse_protected_item(example_body("ClassicCompute_ProtectedItem_Get.json"))
NOW_FIND = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def running(friendly: str, start: str | None, **props: Any) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "entityFriendlyName": friendly,
        "operation": "Backup",
        "backupManagementType": "AzureIaasVM",
    }
    if start:
        extra["startTime"] = start
    return job_body("InProgress", **extra, **props) | {"name": f"job-{friendly}-{start}"}


def test_find_in_progress_backup_refuses_an_ambiguous_match(caplog: pytest.LogCaptureFixture) -> None:
    page = {
        "value": [
            running("iaasvm-1", "2024-05-01T10:00:00Z", containerName="iaasvmcontainer;iaasvm-rg;iaasvm-1"),
            running("IAASVM-1", "2024-05-01T11:00:00Z"),
        ]
    }
    assert Driver(resp(200, page)).run(find_in_progress_backup(API, VAULT, CLASSIC_ITEM, NOW_FIND)) is None
    assert "2 running backup jobs match" in caplog.text


def test_find_in_progress_backup_returns_the_single_match() -> None:
    page = {
        "value": [
            running("other-vm", "2024-05-01T11:30:00Z"),
            running("IAASVM-1", "2024-05-01T11:00:00Z"),
            running("iaasvm-1", "2024-05-01T11:45:00Z", containerName="iaasvmcontainer;other-rg;iaasvm-1"),
        ]
    }
    driver = Driver(resp(200, page))
    job = driver.run(find_in_progress_backup(API, VAULT, CLASSIC_ITEM, NOW_FIND))
    assert job is not None
    assert job.job_id == "job-IAASVM-1-2024-05-01T11:00:00Z"
    odata = query_of(driver.urls[0])["$filter"]
    assert odata == [
        "status eq 'InProgress' and operation eq 'Backup' and backupManagementType eq 'AzureIaasVM' and "
        "startTime eq '2024-04-24 12:00:00 PM' and endTime eq '2024-05-01 12:05:00 PM'"
    ]


def test_find_in_progress_backup_none() -> None:
    driver = Driver(resp(200, {"value": [running("other-vm", "2024-05-01T11:30:00Z")]}))
    assert driver.run(find_in_progress_backup(API, VAULT, CLASSIC_ITEM, NOW_FIND)) is None


def test_find_in_progress_backup_skips_unknown_management_type() -> None:
    item = parse_protected_item(
        {"id": "x", "name": "n", "properties": {"friendlyName": "db", "backupManagementType": "Odd"}}
    )
    driver = Driver(resp(200, {"value": []}))
    assert driver.run(find_in_progress_backup(API, VAULT, item, NOW_FIND)) is None
    assert "backupManagementType" not in query_of(driver.urls[0])["$filter"][0]


@pytest.mark.parametrize(
    ("job_props", "expected"),
    [
        pytest.param({"entityFriendlyName": "iaasvm-1"}, True, id="name-only"),
        pytest.param({"entityFriendlyName": "IaasVM-1"}, True, id="name-case"),
        pytest.param({"entityFriendlyName": "iaasvm-2"}, False, id="other-name"),
        pytest.param({}, False, id="job-without-name"),
        pytest.param({"entityFriendlyName": "iaasvm-1", "backupManagementType": "azureiaasvm"}, True, id="type-case"),
        pytest.param(
            {"entityFriendlyName": "iaasvm-1", "backupManagementType": "AzureWorkload"}, False, id="other-type"
        ),
        pytest.param(
            {"entityFriendlyName": "iaasvm-1", "containerName": "iaasvmcontainer;iaasvm-rg;iaasvm-1"},
            True,
            id="container-suffix",
        ),
        pytest.param(
            {"entityFriendlyName": "iaasvm-1", "containerName": "IaasVMContainer;IAASVMCONTAINER;iaasvm-rg;iaasvm-1"},
            True,
            id="container-full-case",
        ),
        pytest.param(
            {"entityFriendlyName": "iaasvm-1", "containerName": "x;IaasVMContainer;iaasvmcontainer;iaasvm-rg;iaasvm-1"},
            True,
            id="item-container-is-suffix-of-job-container",
        ),
        pytest.param(
            {"entityFriendlyName": "iaasvm-1", "containerName": "iaasvmcontainer;other-rg;iaasvm-1"},
            False,
            id="other-container",
        ),
    ],
)
def test_job_matches_item(job_props: dict[str, Any], expected: bool) -> None:
    assert job_matches_item(make_job("InProgress", **job_props), CLASSIC_ITEM) is expected


def test_job_matches_item_without_item_friendly_name() -> None:
    item = parse_protected_item({"id": "x", "name": "n", "properties": {}})
    assert job_matches_item(make_job("InProgress", entityFriendlyName="n"), item) is False


# --------------------------------------------------------------------------------------------------------------------
# 10. Trigger events and portal links
# --------------------------------------------------------------------------------------------------------------------

SUMMARY = {"job_id": JOB_ID, "status": "Completed"}


@pytest.mark.parametrize(
    ("event", "expected_job_id", "match"),
    [
        pytest.param(None, None, r"missing or not a mapping: None", id="none"),
        pytest.param(["success"], None, r"missing or not a mapping: \['success'\]", id="list"),
        pytest.param("success", None, r"missing or not a mapping: 'success'", id="str"),
        pytest.param({"job_id": JOB_ID}, None, r"unknown status None", id="no-status"),
        pytest.param({"status": "done", "job_id": JOB_ID}, None, r"unknown status 'done'", id="unknown-status"),
        pytest.param({"status": "Completed", "job_id": JOB_ID}, None, r"unknown status 'Completed'", id="job-status"),
        pytest.param({"status": "failed"}, None, r"has no job_id", id="missing-job-id"),
        pytest.param({"status": "failed", "job_id": ""}, None, r"has no job_id", id="empty-job-id"),
        pytest.param({"status": "failed", "job_id": 7}, None, r"has no job_id", id="int-job-id"),
        pytest.param(
            {"status": "failed", "job_id": "other"},
            JOB_ID,
            re.escape(f"is for job 'other', expected {JOB_ID!r}"),
            id="mismatched-job-id",
        ),
        pytest.param(
            {"status": "success", "job_id": JOB_ID}, None, r"'success' carries no job summary", id="no-summary"
        ),
        pytest.param(
            {"status": "warning", "job_id": JOB_ID, "summary": "ok"},
            None,
            r"'warning' carries no job summary",
            id="bad-summary",
        ),
    ],
)
def test_validate_job_event_errors(event: Any, expected_job_id: str | None, match: str) -> None:
    with pytest.raises(AzureBackupTriggerEventError, match=match):
        validate_job_event(event, expected_job_id)


@pytest.mark.parametrize(
    "event",
    [
        {"status": "success", "job_id": JOB_ID, "message": "done", "summary": SUMMARY},
        {"status": "warning", "job_id": JOB_ID, "message": "warn", "summary": SUMMARY},
        {"status": "failed", "job_id": JOB_ID, "message": "failed"},
        {"status": "timeout", "job_id": JOB_ID, "message": "late"},
        {"status": "error", "job_id": JOB_ID, "message": "trigger crashed"},
    ],
)
def test_validate_job_event_accepts_valid_events(event: dict[str, Any]) -> None:
    validated = validate_job_event(event, JOB_ID)
    assert validated == event
    assert validated is not event
    assert validate_job_event(event) == event


@pytest.mark.parametrize(("body", "status"), [(COMPLETED_JOB_BODY, "success"), (FAILED_JOB_BODY, "failed")])
def test_build_job_event_round_trip(body: dict[str, Any], status: str) -> None:
    job = parse_job(body)
    event_status = job_event_status(job)
    assert event_status == status
    event = build_job_event(event_status, job.job_id, "finished", job)
    decoded = json.loads(json.dumps(event))
    assert validate_job_event(decoded, JOB_ID) == event
    assert event["job_status"] == job.status
    assert event["summary"] == job.summary()


def test_build_job_event_without_job() -> None:
    event = build_job_event("timeout", JOB_ID, "still running")
    assert event == {"status": "timeout", "job_id": JOB_ID, "message": "still running"}
    assert validate_job_event(event, JOB_ID) == event


@pytest.mark.parametrize(
    ("cloud", "tenant", "prefix"),
    [
        ("AzureCloud", "tenant-1", "https://portal.azure.com/#@tenant-1/resource"),
        ("AzureCloud", None, "https://portal.azure.com/#/resource"),
        ("AzureUSGovernment", "tenant-1", "https://portal.azure.us/#@tenant-1/resource"),
        ("AzureChinaCloud", None, "https://portal.azure.cn/#/resource"),
    ],
)
def test_portal_job_url(cloud: str, tenant: str | None, prefix: str) -> None:
    url = portal_job_url(CLOUDS[cloud], tenant, VAULT, JOB_ID)
    assert url == f"{prefix}{VAULT_PATH}/backupJobs/{JOB_ID}/overview"


def test_portal_job_url_encodes_job_id() -> None:
    assert portal_job_url(CLOUDS["AzureCloud"], None, VAULT, "a;b").endswith("/backupJobs/a%3Bb/overview")


# --------------------------------------------------------------------------------------------------------------------
# 11. Job verdicts: check_job_outcome / resolve_job_event
# --------------------------------------------------------------------------------------------------------------------


def test_check_job_outcome_success_returns_summary(caplog: pytest.LogCaptureFixture) -> None:
    job = parse_job(COMPLETED_JOB_BODY)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert check_job_outcome(job) == job.summary()
    assert warnings_of(caplog) == []


def test_check_job_outcome_warning(caplog: pytest.LogCaptureFixture) -> None:
    job = make_job("CompletedWithWarnings", errorDetails=[{"errorCode": 7, "errorString": "one disk skipped"}])
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert check_job_outcome(job)["status"] == "CompletedWithWarnings"
    assert any(JOB_ID in m and "one disk skipped" in m for m in warnings_of(caplog))
    with pytest.raises(AzureBackupJobFailedError, match=rf"job {JOB_ID} .* ended CompletedWithWarnings") as info:
        check_job_outcome(job, fail_on_warnings=True)
    assert (info.value.status, info.value.error_codes) == ("CompletedWithWarnings", (7,))


@pytest.mark.parametrize("status", sorted(BackupJobStatus.FAILURE_STATUSES))
def test_check_job_outcome_failure_raises(status: str) -> None:
    job = parse_job(FAILED_JOB_BODY | {"properties": FAILED_JOB_BODY["properties"] | {"status": status}})
    with pytest.raises(
        AzureBackupJobFailedError, match=rf"job {JOB_ID} for {re.escape(ITEM_NAME)} .* ended {status}"
    ) as info:
        check_job_outcome(job, item=ITEM_NAME)
    assert (info.value.job_id, info.value.status, info.value.error_codes) == (JOB_ID, status, (400001, 100002, None))
    assert "Restart VSS writers." in str(info.value)


@pytest.mark.parametrize("status", sorted(BackupJobStatus.NON_TERMINAL_STATUSES))
def test_check_job_outcome_refuses_running_job(status: str) -> None:
    with pytest.raises(ValueError, match=rf"job {JOB_ID} is still {status}"):
        check_job_outcome(make_job(status))


def test_resolve_job_event_success() -> None:
    job = parse_job(COMPLETED_JOB_BODY)
    event = json.loads(json.dumps(build_job_event("success", JOB_ID, "done", job)))
    assert resolve_job_event(event, job_id=JOB_ID) == job.summary()


def test_resolve_job_event_warning(caplog: pytest.LogCaptureFixture) -> None:
    job = make_job("CompletedWithWarnings", errorDetails=[{"errorCode": 7, "errorString": "skipped"}])
    event = build_job_event("warning", JOB_ID, "completed with warnings", job)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert resolve_job_event(event, job_id=JOB_ID) == job.summary()
    assert any(JOB_ID in m for m in warnings_of(caplog))
    with pytest.raises(AzureBackupJobFailedError, match=r"completed with warnings") as info:
        resolve_job_event(event, job_id=JOB_ID, fail_on_warnings=True)
    assert (info.value.status, info.value.error_codes) == ("CompletedWithWarnings", (7,))


def test_resolve_job_event_failed() -> None:
    job = parse_job(FAILED_JOB_BODY)
    event = build_job_event("failed", JOB_ID, describe_job_failure(job), job)
    with pytest.raises(AzureBackupJobFailedError, match=rf"Azure Backup job {JOB_ID} for vm1") as info:
        resolve_job_event(event, job_id=JOB_ID)
    assert (info.value.job_id, info.value.status, info.value.error_codes) == (JOB_ID, "Failed", (400001, 100002, None))


def test_resolve_job_event_failed_without_summary() -> None:
    with pytest.raises(AzureBackupJobFailedError, match=r"boom") as info:
        resolve_job_event({"status": "failed", "job_id": JOB_ID, "message": "boom"}, job_id=JOB_ID)
    assert (info.value.status, info.value.error_codes) == ("failed", ())


@pytest.mark.parametrize(
    ("status", "exc_type", "match"),
    [
        ("timeout", AzureBackupTimeoutError, r"^still running after 3600 s$"),
        ("error", AzureBackupTriggerEventError, rf"Waiting for job {JOB_ID} failed: still running after 3600 s"),
    ],
)
def test_resolve_job_event_timeout_and_error(status: EventStatus, exc_type: type[Exception], match: str) -> None:
    with pytest.raises(exc_type, match=match):
        resolve_job_event(build_job_event(status, JOB_ID, "still running after 3600 s"), job_id=JOB_ID)


def test_resolve_job_event_validates_first() -> None:
    with pytest.raises(AzureBackupTriggerEventError, match=r"is for job 'other'"):
        resolve_job_event({"status": "success", "job_id": "other", "summary": {}}, job_id=JOB_ID)


@pytest.mark.parametrize("status", ["failed", "timeout", "error"])
def test_resolve_job_event_without_message(status: str) -> None:
    with pytest.raises(
        (AzureBackupJobFailedError, AzureBackupTimeoutError, AzureBackupTriggerEventError), match=JOB_ID
    ):
        resolve_job_event({"status": status, "job_id": JOB_ID}, job_id=JOB_ID)


# -- wait_for_job (the one job-wait loop of the sync hook and the trigger) -----------------------------------------


def _not_found(code: str) -> ApiResponse:
    return resp(404, {"error": {"code": code, "message": "not found"}})


def test_wait_for_job_polls_until_terminal(clock: FakeClock) -> None:
    driver = Driver(resp(200, job_body("InProgress")), resp(200, job_body("Completed")), clock=clock)
    flow = wait_for_job(API, VAULT, JOB_ID, poll_interval=30, deadline=clock.now + 3600, clock=clock)
    result = driver.run(flow)
    assert not result.timed_out and result.job is not None and result.job.status == "Completed"
    assert driver.steps == ["GET", "sleep:30", "GET"]


def test_wait_for_job_deadline_caps_the_last_sleep(clock: FakeClock) -> None:
    driver = Driver(*[resp(200, job_body("InProgress"))] * 3, clock=clock)
    result = driver.run(wait_for_job(API, VAULT, JOB_ID, poll_interval=30, deadline=clock.now + 45, clock=clock))
    assert result.timed_out and result.job is not None and result.job.status == "InProgress"
    # The last sleep ends exactly at the deadline, and the job is read once more there.
    assert driver.steps == ["GET", "sleep:30", "GET", "sleep:15", "GET"]


VAULT_EXISTS = resp(200, {"name": "NetSDKTestRsVault", "location": "westus", "properties": {}})


def test_wait_for_job_waits_out_a_job_404_within_the_grace(clock: FakeClock) -> None:
    driver = Driver(_not_found("BMSUserErrorJobNotFound"), VAULT_EXISTS, resp(200, job_body("Completed")), clock=clock)
    flow = wait_for_job(API, VAULT, JOB_ID, poll_interval=10, deadline=clock.now + 3600, clock=clock)
    assert driver.run(flow).job is not None


def test_wait_for_job_404_past_the_grace_raises(clock: FakeClock) -> None:
    driver = Driver(*[_not_found("BMSUserErrorJobNotFound"), VAULT_EXISTS] * 3, _not_found("X"), clock=clock)
    flow = wait_for_job(
        API, VAULT, JOB_ID, poll_interval=10, deadline=clock.now + 3600, not_found_grace=25, clock=clock
    )
    with pytest.raises(AzureBackupNotFoundError, match="X"):
        driver.run(flow)
    assert driver.steps.count("GET") == 7  # 4 job reads, 3 vault checks


def test_ambiguous_resource_not_found_with_existing_vault_keeps_waiting(clock: FakeClock) -> None:
    """ARM may say ResourceNotFound for a job it does not show yet: the vault decides, not the code."""
    driver = Driver(_not_found("ResourceNotFound"), VAULT_EXISTS, resp(200, job_body("Completed")), clock=clock)
    result = driver.run(wait_for_job(API, VAULT, JOB_ID, poll_interval=10, deadline=clock.now + 3600, clock=clock))
    assert result.job is not None and result.job.status == "Completed"


def test_resource_not_found_with_missing_vault_fails_at_once_naming_the_vault(clock: FakeClock) -> None:
    driver = Driver(_not_found("ResourceNotFound"), _not_found("ResourceNotFound"), clock=clock)
    with pytest.raises(AzureBackupNotFoundError, match="vault 'NetSDKTestRsVault' in resource group 'SwaggerTestRg'"):
        driver.run(wait_for_job(API, VAULT, JOB_ID, poll_interval=10, deadline=clock.now + 3600, clock=clock))
    assert driver.steps == ["GET", "GET"]


@pytest.mark.parametrize("code", ["ResourceGroupNotFound", "SubscriptionNotFound"])
def test_wait_for_job_parent_404_fails_at_once(clock: FakeClock, code: str) -> None:
    driver = Driver(_not_found(code), clock=clock)
    with pytest.raises(AzureBackupNotFoundError, match=code):
        driver.run(wait_for_job(API, VAULT, JOB_ID, poll_interval=10, deadline=clock.now + 3600, clock=clock))
    assert driver.steps == ["GET"]


def test_wait_for_job_waits_out_throttling_beyond_the_request_retries(clock: FakeClock) -> None:
    throttled = resp(429, {"error": {"code": "TooManyRequests", "message": "slow down"}}, {"Retry-After": "300"})
    policy = RetryPolicy(max_attempts=2, max_retry_after=120)
    api = BackupApi(API.base_url, policy=policy)
    driver = Driver(throttled, throttled, resp(200, job_body("Completed")), clock=clock)
    result = driver.run(wait_for_job(api, VAULT, JOB_ID, poll_interval=10, deadline=clock.now + 3600, clock=clock))
    assert result.job is not None
    assert clock.now >= 120 + 300  # one in-request wait (capped), then the service's full Retry-After


def test_max_throttle_wait_raises_instead_of_sleeping_with_retry_after() -> None:
    throttled = resp(429, {"error": {"code": "TooManyRequests", "message": "slow down"}}, {"Retry-After": "3600"})
    driver = Driver(throttled)
    with pytest.raises(AzureBackupThrottledError) as info:
        driver.run(call(API.get_job(VAULT, JOB_ID), RetryPolicy(max_throttle_wait=5)))
    assert info.value.retry_after == 3600
    assert driver.steps == ["GET"]  # no sleep in the caller's slot


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("completed", "Completed"), ("COMPLETEDWITHWARNINGS", "CompletedWithWarnings"), ("inprogress", "InProgress")],
)
def test_job_statuses_are_read_case_insensitively(raw: str, canonical: str) -> None:
    job = parse_job({"name": "j", "properties": {"status": raw}})
    assert job.status == canonical
    assert job.is_terminal == (canonical != "InProgress")


def test_operation_statuses_are_read_case_insensitively() -> None:
    status = parse_operation_status({"name": "op", "status": "succeeded", "properties": {"jobId": "j"}})
    assert status.status == OperationStatusValue.SUCCEEDED


def test_cancel_without_follow_sends_only_the_post() -> None:
    driver = Driver(resp(202, None, example_headers("TriggerCancelJob.json")))
    driver.run(cancel_job(API, VAULT, JOB_ID, WaitSettings(), follow=False))
    assert driver.steps == ["POST"]


# -- which job did our POST start? -----------------------------------------------------------------------------------

POSTED_AT = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
SKEW = timedelta(minutes=2)


def _job(name: str, start: str | None, end: str | None = None, status: str = "InProgress") -> BackupJob:
    return parse_job(
        {"name": name, "properties": {"status": status, "startTime": start, "endTime": end, "operation": "Backup"}}
    )


def test_jobs_started_after_the_post_win_over_the_skew_window() -> None:
    jobs = [_job("early", "2026-05-01T11:59:00Z"), _job("after", "2026-05-01T12:00:05Z")]
    assert [j.job_id for j in jobs_started_by_request(jobs, POSTED_AT, SKEW)] == ["after"]


def test_skew_window_is_the_fallback() -> None:
    jobs = [_job("early", "2026-05-01T11:59:00Z"), _job("too-early", "2026-05-01T11:50:00Z")]
    assert [j.job_id for j in jobs_started_by_request(jobs, POSTED_AT, SKEW)] == ["early"]


def test_a_job_that_ended_before_the_post_is_not_it() -> None:
    jobs = [_job("old", "2026-05-01T11:58:30Z", "2026-05-01T11:59:30Z", "Failed")]
    assert jobs_started_by_request(jobs, POSTED_AT, SKEW) == []


def test_two_jobs_after_the_post_are_both_returned() -> None:
    jobs = [_job("a", "2026-05-01T12:00:05Z"), _job("b", "2026-05-01T12:00:09Z")]
    assert len(jobs_started_by_request(jobs, POSTED_AT, SKEW)) == 2  # the operator refuses to guess


def test_file_share_job_matches_by_storage_account() -> None:
    share = parse_protected_item(
        {
            "id": f"{VAULT_PATH}/backupFabrics/Azure/protectionContainers/StorageContainer;Storage;rg;acct1"
            "/protectedItems/AzureFileShare;share",
            "name": "AzureFileShare;share",
            "properties": {"friendlyName": "share", "backupManagementType": "AzureStorage"},
        }
    )

    def storage_job(account: str) -> BackupJob:
        return parse_job(
            {
                "name": "j",
                "properties": {
                    "status": "InProgress",
                    "entityFriendlyName": "share",
                    "backupManagementType": "AzureStorage",
                    "storageAccountName": account,
                },
            }
        )

    assert job_matches_item(storage_job("acct1"), share)
    assert not job_matches_item(storage_job("other-account"), share)


@pytest.mark.parametrize(
    ("status", "fail_on_warnings", "expected"),
    [
        ("Completed", False, True),
        ("CompletedWithWarnings", False, True),
        ("CompletedWithWarnings", True, False),
        ("Failed", False, False),
        ("InProgress", False, False),
    ],
)
def test_status_is_success(status: str, fail_on_warnings: bool, expected: bool) -> None:
    assert status_is_success(status, fail_on_warnings=fail_on_warnings) is expected
