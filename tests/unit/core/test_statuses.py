"""Job status rules, failure descriptions and summaries."""

from __future__ import annotations

import json
import logging
import re
from datetime import timedelta
from typing import Any

import pytest

from airflow_backup_provider.core import (
    BackupJobStatus,
    OperationStatusValue,
    describe_job_failure,
    job_event_status,
    parse_job,
)
from tests.unit.conftest import (
    COMPLETED_JOB_BODY,
    FAILED_JOB_BODY,
    ITEM_NAME,
    JOB_ID,
    LOGGER,
    VAULT_PATH,
    make_job,
    warnings_of,
)

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
