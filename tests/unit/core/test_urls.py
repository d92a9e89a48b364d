"""URL building and strict origin parsing (:mod:`.core.api`, :mod:`.core.origins`)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from airflow_backup_provider.core import (
    DEFAULT_API_VERSION,
    VAULT_API_VERSION,
    ApiRequest,
    BackupApi,
    redact_url,
    require_name,
)
from airflow_backup_provider.exceptions import (
    AzureBackupConfigError,
    AzureBackupForeignHostError,
)
from tests.unit.conftest import (
    API,
    ARM,
    ITEM,
    ITEM_PATH,
    JOB_ID,
    OP_ID,
    POST_BACKUP,
    VAULT,
    VAULT_PATH,
    VM_BODY,
    example_body,
    query_of,
)

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
