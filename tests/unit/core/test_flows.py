"""Multi-step flows driven by the scripted :class:`~tests.unit.conftest.Driver` (:mod:`.core.flows`)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest

from airflow_backup_provider.core import (
    DEFAULT_API_VERSION,
    ApiResponse,
    TriggeredOperation,
    WaitSettings,
    cancel_job,
    find_in_progress_backup,
    follow_operation,
    job_matches_item,
    list_pages,
    parse_job,
    parse_operation_handle,
    parse_protected_item,
    trigger_and_follow,
    wait_for_location,
)
from airflow_backup_provider.exceptions import (
    AzureBackupAcceptedError,
    AzureBackupApiError,
    AzureBackupConfigError,
    AzureBackupForeignHostError,
    AzureBackupOperationError,
    AzureBackupTimeoutError,
)
from tests.unit.conftest import (
    API,
    ARM,
    ITEM,
    ITEM_PATH,
    JOB_ID,
    OP_ID,
    POST_BACKUP,
    REQ_HEADERS,
    RESULT_URL,
    STATUS_URL,
    UTC,
    VAULT,
    VAULT_PATH,
    VM_BODY,
    ZERO_ID,
    Driver,
    FakeClock,
    arm_error,
    example_body,
    example_headers,
    job_body,
    make_job,
    op_status,
    query_of,
    resp,
)

# --------------------------------------------------------------------------------------------------------------------
# 9. Flows
# --------------------------------------------------------------------------------------------------------------------


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
