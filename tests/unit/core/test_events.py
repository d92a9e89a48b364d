"""Trigger events and portal links (:mod:`.core.verdicts`, :mod:`.core.portal`)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from airflow_backup_provider.core import (
    CLOUDS,
    build_job_event,
    job_event_status,
    parse_job,
    portal_job_url,
    validate_job_event,
)
from airflow_backup_provider.exceptions import (
    AzureBackupTriggerEventError,
)
from tests.unit.conftest import (
    COMPLETED_JOB_BODY,
    FAILED_JOB_BODY,
    JOB_ID,
    VAULT,
    VAULT_PATH,
)

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
