"""``call()``: the retry policy and the error mapping (:mod:`airflow_backup_provider.core.wire`)."""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from airflow_backup_provider.core import (
    ApiRequest,
    RetryPolicy,
    TransportFailure,
    TransportFailureKind,
    call,
    call_parsed,
    error_from_response,
    get_job,
    parse_job,
    parse_retry_after,
)
from airflow_backup_provider.exceptions import (
    AzureBackupApiError,
    AzureBackupAuthError,
    AzureBackupConfigError,
    AzureBackupNotFoundError,
    AzureBackupOperationInProgressError,
    AzureBackupThrottledError,
    AzureBackupTransportError,
)
from tests.unit.conftest import (
    API,
    GET_JOB,
    POLICY,
    POST_BACKUP,
    REQ_HEADERS,
    UTC,
    VAULT,
    ZERO_ID,
    Driver,
    arm_error,
    example_body,
    job_body,
    resp,
)

# --------------------------------------------------------------------------------------------------------------------
# 8. call(): retry policy and errors
# --------------------------------------------------------------------------------------------------------------------


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
