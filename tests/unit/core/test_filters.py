"""Every ``$filter`` the provider builds (:mod:`airflow_backup_provider.core.api`)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_backup_provider.core import (
    build_job_filter,
    build_protected_items_filter,
    build_recovery_point_filter,
    build_restore_request,
    format_filter_datetime,
)
from airflow_backup_provider.exceptions import (
    AzureBackupConfigError,
)
from tests.unit.conftest import (
    JOB_ID,
    NOW,
    UTC,
)

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


# The protected-items and recovery-point filters and the restore body (moved here from the hook).


def test_protected_items_filter() -> None:
    assert build_protected_items_filter() is None
    assert build_protected_items_filter(backup_management_type="AzureIaasVM", item_type="VM") == (
        "backupManagementType eq 'AzureIaasVM' and itemType eq 'VM'"
    )
    with pytest.raises(AzureBackupConfigError, match="item_type"):
        build_protected_items_filter(item_type="VM' or 1 eq 1")


def test_recovery_point_filter_open_ends() -> None:
    assert build_recovery_point_filter() is None
    # open end: an hour past now; open start: a year before the end
    assert build_recovery_point_filter(start_time="2024-05-01T00:00:00Z", now=NOW) == (
        "startDate eq '2024-05-01 12:00:00 AM' and endDate eq '2024-05-01 01:30:15 PM'"
    )
    assert build_recovery_point_filter(end_time=datetime(2024, 5, 1, 13, tzinfo=UTC)) == (
        "startDate eq '2023-05-02 01:00:00 PM' and endDate eq '2024-05-01 01:00:00 PM'"
    )
    with pytest.raises(AzureBackupConfigError, match="start_time"):
        build_recovery_point_filter(start_time="yesterday")


def test_restore_request_is_validated_and_wrapped() -> None:
    props = {"objectType": "IaasVMRestoreRequest", "recoveryType": "AlternateLocation"}
    assert build_restore_request(props) == {"properties": props}
    assert build_restore_request({"properties": props}) == {"properties": props}
    for bad in (None, {}, {"properties": {"recoveryType": "x"}}, "IaasVMRestoreRequest"):
        with pytest.raises(AzureBackupConfigError, match="restore_request"):
            build_restore_request(bad)
