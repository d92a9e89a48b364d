"""Shared by the unit tests: spec examples, scripted responses, the flow :class:`Driver`, :class:`FakeClock`.

No network, no sleeps: flows are driven by :class:`Driver` against scripted outcomes, and the spec's own
x-ms-examples (``tests/spec/examples``) are the ground truth for response shapes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_backup_provider.core import (
    Action,
    ApiResponse,
    BackupApi,
    BackupJob,
    Flow,
    ItemRef,
    Outcome,
    RetryPolicy,
    Send,
    Sleep,
    TransportFailure,
    VaultRef,
    WaitSettings,
    parse_job,
    parse_operation_status,
    parse_page,
    parse_protected_item,
    parse_recovery_point,
)

T = TypeVar("T")

# --------------------------------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------------------------------

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "spec" / "examples"
LOGGER = "airflow_backup_provider.core"

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
    return [r.getMessage() for r in caplog.records if r.name.startswith(LOGGER) and r.levelno == logging.WARNING]


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


REQ_HEADERS = {"x-ms-request-id": "req-1"}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def wait(clock: FakeClock) -> WaitSettings:
    return WaitSettings(poll_interval=5.0, timeout=600.0, clock=clock)


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)
