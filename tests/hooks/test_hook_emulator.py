"""AzureBackupHook and AzureBackupAsyncHook against the HTTPS emulator: real TLS, real azure-identity sign-in.

Every fault the emulator can inject is exercised through both hooks (parametrised ``client`` fixture).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from airflow_backup_provider.emulator import (
    CLIENT_SECRET,
    FILE_SHARE_ITEM,
    SQL_ITEM,
    VM_ITEM,
    Emulator,
    Fault,
)
from airflow_backup_provider.exceptions import (
    AzureBackupAcceptedError,
    AzureBackupConfigError,
    AzureBackupForeignHostError,
    AzureBackupNotFoundError,
    AzureBackupOperationError,
    AzureBackupOperationInProgressError,
    AzureBackupThrottledError,
    AzureBackupTransportError,
)
from airflow_backup_provider.hooks.backup import AzureBackupAsyncHook, AzureBackupHook
from airflow_backup_provider.protocol import BackupJob, BackupJobStatus, RetryPolicy, TriggeredOperation

FAST = {
    "retry_policy": RetryPolicy(max_attempts=4, backoff_base=0.05, backoff_max=0.2),
    "operation_poll_interval": 0.05,
    "request_timeout": (3.0, 3.0),
}
T = Any


def _run(coro_factory: Callable[[AzureBackupAsyncHook], Coroutine[Any, Any, T]], **hook_kwargs: Any) -> T:
    async def go() -> T:
        async with AzureBackupAsyncHook(**{**FAST, **hook_kwargs}) as hook:
            return await coro_factory(hook)

    return asyncio.run(go())


class SyncClient:
    """The operations the fault tests need, through the sync hook."""

    kind = "sync"

    def __init__(self, **hook_kwargs: Any) -> None:
        self.hook = AzureBackupHook(**{**FAST, **hook_kwargs})

    def trigger(self, item: Any = VM_ITEM) -> TriggeredOperation:
        return self.hook.trigger_backup(item.container_name, item.protected_item_name)

    def get_job(self, job_id: str) -> BackupJob:
        return self.hook.get_job(job_id)

    def list_jobs(self, **kwargs: Any) -> list[BackupJob]:
        return self.hook.list_jobs(**kwargs)

    def cancel(self, job_id: str) -> None:
        self.hook.cancel_job(job_id)


class AsyncClient:
    """The same operations through the async hook (a fresh event loop per call, like a triggerer would own)."""

    kind = "async"

    def __init__(self, **hook_kwargs: Any) -> None:
        self.hook_kwargs = hook_kwargs

    def trigger(self, item: Any = VM_ITEM) -> TriggeredOperation:
        return _run(lambda h: h.atrigger_backup(item.container_name, item.protected_item_name), **self.hook_kwargs)

    def get_job(self, job_id: str) -> BackupJob:
        return _run(lambda h: h.aget_job(job_id), **self.hook_kwargs)

    def list_jobs(self, **kwargs: Any) -> list[BackupJob]:
        return _run(lambda h: h.alist_jobs(**kwargs), **self.hook_kwargs)

    def cancel(self, job_id: str) -> None:
        _run(lambda h: h.acancel_job(job_id), **self.hook_kwargs)


Client = SyncClient | AsyncClient


@pytest.fixture(params=["sync", "async"])
def client(request: pytest.FixtureRequest, emulator: Emulator) -> Client:
    return SyncClient() if request.param == "sync" else AsyncClient()


def arm_requests(emu: Emulator, method: str | None = None, contains: str = "") -> list[Any]:
    return [
        r
        for r in emu.requests
        if "/subscriptions/" in r.path.lower()
        and (method is None or r.method == method)
        and contains.lower() in r.path.lower()
    ]


def wait_terminal(client: Client, job_id: str, timeout: float = 30.0) -> BackupJob:
    deadline = time.time() + timeout
    while True:
        job = client.get_job(job_id)
        if job.is_terminal or time.time() > deadline:
            return job
        time.sleep(0.2)


# -- happy paths ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("item", [VM_ITEM, FILE_SHARE_ITEM, SQL_ITEM], ids=["vm", "fileshare", "sql"])
def test_trigger_follow_and_complete(client: Client, emulator: Emulator, item: Any) -> None:
    triggered = client.trigger(item)
    assert triggered.job_id and triggered.operation_id
    job = wait_terminal(client, triggered.job_id)
    assert job.status == BackupJobStatus.COMPLETED
    assert job.operation == "Backup"
    assert job.entity_friendly_name == item.friendly_name
    assert job.duration is not None and job.duration.total_seconds() > 0  # ISO-8601 and TimeSpan both parsed
    assert job.summary()["duration"].startswith("PT")
    # The request body type was inferred from the container.
    post = arm_requests(emulator, "POST", "/backup")[0]
    expected_type = {
        "VM": "IaasVMBackupRequest",
        "AzureFileShare": "AzureFileShareBackupRequest",
        "SQLDataBase": "AzureWorkloadBackupRequest",
    }[item.workload]
    assert post.body["properties"]["objectType"] == expected_type


def test_names_with_semicolons_are_single_path_segments(emulator: Emulator) -> None:
    SyncClient().trigger(VM_ITEM)
    post = arm_requests(emulator, "POST", "/backup")[0]
    assert "protectionContainers/IaasVMContainer%3Biaasvmcontainerv2%3Brg-app%3Bvm-app-01/" in post.raw_path
    assert post.query["api-version"] == "2026-10-01"


def test_list_jobs_filters_and_follows_next_link(client: Client, emulator: Emulator) -> None:
    emulator.configure(job_page_size=2)
    for item in (VM_ITEM, FILE_SHARE_ITEM, SQL_ITEM):
        client.trigger(item)
    jobs = client.list_jobs(operation="Backup", status="InProgress")
    assert len({j.job_id for j in jobs}) == len(jobs) >= 3
    assert all(j.status == "InProgress" and j.operation == "Backup" for j in jobs)
    pages = arm_requests(emulator, "GET", "/backupJobs")
    assert len([p for p in pages if p.path.lower().endswith("/backupjobs")]) >= 2  # nextLink followed
    assert "status eq 'InProgress'" in pages[0].query["$filter"]


def test_sync_only_calls(emulator: Emulator) -> None:
    hook = AzureBackupHook(**FAST)
    vault = hook.get_vault()
    assert vault.name == emulator.connection_extra()["vault_name"]
    items = hook.list_protected_items(backup_management_type="AzureIaasVM")
    assert [i.protected_item_name for i in items] == [VM_ITEM.protected_item_name]
    item = hook.get_protected_item(VM_ITEM.container_name, VM_ITEM.protected_item_name)
    assert item.friendly_name == VM_ITEM.friendly_name
    assert item.container_name == VM_ITEM.container_name
    before = hook.list_recovery_points(VM_ITEM.container_name, VM_ITEM.protected_item_name)
    job = hook.wait_for_job(
        hook.trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name).job_id, poll_interval=0.2, timeout=30
    )
    after = hook.list_recovery_points(VM_ITEM.container_name, VM_ITEM.protected_item_name)
    assert len(after) == len(before) + 1
    newest = max(after, key=lambda p: p.recovery_point_time)  # type: ignore[arg-type,return-value]
    assert job.start_time is not None and newest.recovery_point_time is not None
    assert newest.recovery_point_time >= job.start_time
    restore = hook.trigger_restore(
        VM_ITEM.container_name,
        VM_ITEM.protected_item_name,
        newest.recovery_point_id,
        {
            "objectType": "IaasVMRestoreRequest",
            "recoveryType": "RestoreDisks",
            "recoveryPointId": newest.recovery_point_id,
        },
    )
    assert hook.get_job(restore.job_id).operation == "Restore"
    assert hook.test_connection() == (True, f"Connected: vault '{vault.name}' ({vault.location}) is reachable.")


def test_cancel_job(client: Client, emulator: Emulator) -> None:
    job_id = client.trigger().job_id
    client.cancel(job_id)
    job = wait_terminal(client, job_id)
    assert job.status == BackupJobStatus.CANCELLED
    assert arm_requests(emulator, "GET", "/operationResults/")  # the cancel operation was followed


def test_second_trigger_is_a_typed_in_progress_error(client: Client) -> None:
    client.trigger()
    with pytest.raises(AzureBackupOperationInProgressError, match="UserErrorBackupOperationInProgress"):
        client.trigger()


def test_unknown_item_is_not_found(client: Client) -> None:
    ghost = type("Item", (), {"container_name": VM_ITEM.container_name, "protected_item_name": "VM;nope;nope;nope"})
    with pytest.raises(AzureBackupNotFoundError, match="BMSUserErrorDataSourceObjectNotFound") as info:
        client.trigger(ghost)
    assert info.value.http_status == 404 and info.value.request_id


# -- faults -----------------------------------------------------------------------------------------------------------


def test_throttled_get_honours_retry_after(client: Client, emulator: Emulator) -> None:
    job_id = client.trigger().job_id
    emulator.add_fault(Fault(kind="throttle", method="GET", path_regex="/backupJobs/", retry_after=1))
    started = time.monotonic()
    assert client.get_job(job_id).job_id == job_id
    assert time.monotonic() - started >= 1.0  # waited Retry-After, not the 0.05 s backoff
    statuses = [r.status for r in arm_requests(emulator, "GET", f"/backupJobs/{job_id}")]
    assert statuses == [429, 200]


def test_throttled_post_is_retried_because_service_did_not_act(client: Client, emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="throttle", method="POST", retry_after=0))
    assert client.trigger().job_id
    assert [r.status for r in arm_requests(emulator, "POST", "/backup")] == [429, 202]


def test_unavailable_get_is_retried(client: Client, emulator: Emulator) -> None:
    job_id = client.trigger().job_id
    emulator.add_fault(Fault(kind="unavailable", method="GET", path_regex="/backupJobs/", count=2, retry_after=0))
    assert client.get_job(job_id).job_id == job_id
    assert [r.status for r in arm_requests(emulator, "GET", "/backupJobs/")] == [503, 503, 200]


def test_unavailable_post_is_not_retried(client: Client, emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="unavailable", method="POST", retry_after=0))
    with pytest.raises(AzureBackupThrottledError, match="HTTP 503"):
        client.trigger()
    assert len(arm_requests(emulator, "POST", "/backup")) == 1


def test_persistent_throttling_is_bounded(client: Client, emulator: Emulator) -> None:
    job_id = client.trigger().job_id
    emulator.add_fault(Fault(kind="throttle", method="GET", path_regex="/backupJobs/", count=10, retry_after=0))
    with pytest.raises(AzureBackupThrottledError, match="HTTP 429"):
        client.get_job(job_id)
    assert len(arm_requests(emulator, "GET", "/backupJobs/")) == FAST["retry_policy"].max_attempts


def test_connection_reset_on_get_is_retried(client: Client, emulator: Emulator) -> None:
    job_id = client.trigger().job_id
    emulator.add_fault(Fault(kind="reset", method="GET", path_regex="/backupJobs/"))
    assert client.get_job(job_id).job_id == job_id
    assert [r.status for r in arm_requests(emulator, "GET", "/backupJobs/")] == [0, 200]


def test_connection_reset_on_post_is_never_retried(client: Client, emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="reset", method="POST"))
    with pytest.raises(AzureBackupTransportError, match="may have acted") as info:
        client.trigger()
    assert info.value.may_have_acted
    assert len(arm_requests(emulator, "POST", "/backup")) == 1


def test_slow_response_times_out_and_get_is_retried(emulator: Emulator, request: pytest.FixtureRequest) -> None:
    for client in (SyncClient(request_timeout=(2.0, 0.5)), AsyncClient(request_timeout=(2.0, 0.5))):
        emulator.reset()
        job_id = client.trigger().job_id
        emulator.add_fault(Fault(kind="slow", method="GET", path_regex="/backupJobs/", delay=1.5))
        assert client.get_job(job_id).job_id == job_id
        time.sleep(1.6)  # the emulator records the slow request once it has answered it
        assert len(arm_requests(emulator, "GET", "/backupJobs/")) == 2


def test_token_expiry_reacquires_once(client: Client, emulator: Emulator) -> None:
    job_id = client.trigger().job_id
    emulator.add_fault(Fault(kind="token_expiry", method="GET", path_regex="/backupJobs/"))
    assert client.get_job(job_id).job_id == job_id
    gets = arm_requests(emulator, "GET", "/backupJobs/")
    assert [g.status for g in gets] == [401, 200]
    assert gets[0].token_sha256 != gets[1].token_sha256  # a fresh token, not the cached one


def test_job_not_found_for_first_polls_is_waited_out(emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="job_not_found", count=2))
    hook = AzureBackupHook(**FAST)
    job_id = hook.trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name).job_id
    job = hook.wait_for_job(job_id, poll_interval=0.1, timeout=30)
    assert job.status == BackupJobStatus.COMPLETED
    assert [r.status for r in arm_requests(emulator, "GET", f"/backupJobs/{job_id}")][:2] == [404, 404]


def test_job_not_found_async(emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="job_not_found", count=1))
    client = AsyncClient()
    job_id = client.trigger().job_id
    with pytest.raises(AzureBackupNotFoundError, match="404"):
        client.get_job(job_id)
    assert client.get_job(job_id).job_id == job_id


def test_operation_in_progress_for_n_polls(client: Client, emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="operation_in_progress", polls=4))
    assert client.trigger().job_id
    polls = [r for r in emulator.requests if "operationsstatus" in r.path.lower()]
    assert len(polls) >= 5


def test_operation_failed_is_reported(client: Client, emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="operation_failed"))
    with pytest.raises(AzureBackupOperationError, match="ended Failed"):
        client.trigger()


def test_foreign_async_host_never_gets_the_token(client: Client, emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="foreign_async_host"))
    with pytest.raises(AzureBackupAcceptedError, match="localhost") as info:
        client.trigger()
    assert isinstance(info.value.cause, AzureBackupForeignHostError)
    assert not [r for r in emulator.requests if r.host.startswith("localhost")]


def test_foreign_next_link_is_refused(client: Client, emulator: Emulator) -> None:
    emulator.configure(job_page_size=1)
    client.trigger(VM_ITEM)
    client.trigger(FILE_SHARE_ITEM)
    emulator.add_fault(Fault(kind="foreign_async_host"))
    with pytest.raises(AzureBackupForeignHostError, match="nextLink"):
        client.list_jobs()
    assert not [r for r in emulator.requests if r.host.startswith("localhost")]


# -- sign-in, secrets, bad input --------------------------------------------------------------------------------------


def test_token_is_cached_per_hook(emulator: Emulator) -> None:
    hook = AzureBackupHook(**FAST)
    job_id = hook.trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name).job_id
    for _ in range(3):
        hook.get_job(job_id)
    assert hook.token_requests == 1
    assert len([r for r in emulator.requests if r.path.endswith("/oauth2/v2.0/token")]) == 1


def test_wrong_secret_fails_clearly_without_the_secret(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    conn = json.loads(emulator.connection_json())
    conn["password"] = "wrong-secret-value-123"
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_BACKUP_DEFAULT", json.dumps(conn))
    caplog.set_level(logging.DEBUG)
    hook = AzureBackupHook(**FAST)
    ok, message = hook.test_connection()
    assert not ok and "AADSTS7000215" in message
    assert "wrong-secret-value-123" not in message
    assert "wrong-secret-value-123" not in caplog.text


def test_client_secret_never_logged(emulator: Emulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    hook = AzureBackupHook(**FAST)
    job_id = hook.trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name).job_id
    hook.wait_for_job(job_id, poll_interval=0.2, timeout=30)
    assert CLIENT_SECRET not in caplog.text
    assert hook._token is not None and hook._token.token not in caplog.text
    assert "x-ms-request-id" in caplog.text  # request ids are logged at debug
    assert CLIENT_SECRET not in repr(hook.settings)


@pytest.mark.parametrize(
    ("extra_change", "field"),
    [
        ({"subscription_id": None}, "subscription_id"),
        ({"tenant_id": None}, "tenant_id"),
        ({"cloud_environment": "Mars"}, "cloud_environment"),
        ({"resource_manager_endpoint": "http://127.0.0.1:1"}, "resource_manager_endpoint"),
    ],
)
def test_bad_connection_fields_are_named(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, extra_change: dict[str, Any], field: str
) -> None:
    conn = json.loads(emulator.connection_json())
    conn["extra"] = {k: v for k, v in {**conn["extra"], **extra_change}.items() if v is not None}
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_BACKUP_DEFAULT", json.dumps(conn))
    with pytest.raises(AzureBackupConfigError, match=field) as info:
        AzureBackupHook(**FAST).get_job("00000000-0000-0000-0000-000000000001")
    assert CLIENT_SECRET not in str(info.value)


def test_missing_vault_is_named(emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = json.loads(emulator.connection_json())
    del conn["extra"]["vault_name"]
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_BACKUP_DEFAULT", json.dumps(conn))
    with pytest.raises(AzureBackupConfigError, match="vault_name"):
        AzureBackupHook(**FAST).get_job("00000000-0000-0000-0000-000000000001")
    # An explicit vault argument fills the gap.
    with pytest.raises(AzureBackupNotFoundError):
        AzureBackupHook(**FAST).get_job(
            "00000000-0000-0000-0000-000000000001", vault_name=emulator.connection_extra()["vault_name"]
        )
