"""Job verdicts: ``check_job_outcome`` / ``resolve_job_event`` (:mod:`.core.verdicts`)."""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, timezone

import pytest

from airflow_backup_provider.core import (
    ApiResponse,
    BackupApi,
    BackupJob,
    BackupJobStatus,
    EventStatus,
    OperationStatusValue,
    RetryPolicy,
    WaitSettings,
    build_job_event,
    call,
    cancel_job,
    check_job_outcome,
    describe_job_failure,
    job_matches_item,
    jobs_started_by_request,
    parse_job,
    parse_operation_status,
    parse_protected_item,
    resolve_job_event,
    status_is_success,
    wait_for_job,
)
from airflow_backup_provider.exceptions import (
    AzureBackupJobFailedError,
    AzureBackupNotFoundError,
    AzureBackupThrottledError,
    AzureBackupTimeoutError,
    AzureBackupTriggerEventError,
)
from tests.unit.conftest import (
    API,
    COMPLETED_JOB_BODY,
    FAILED_JOB_BODY,
    ITEM_NAME,
    JOB_ID,
    LOGGER,
    VAULT,
    VAULT_PATH,
    Driver,
    FakeClock,
    example_headers,
    job_body,
    make_job,
    resp,
    warnings_of,
)

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
