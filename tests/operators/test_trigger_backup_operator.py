"""TriggerBackupOperator against the emulator: every argument path, idempotent retries, waiting, on_kill."""

from __future__ import annotations

import importlib.metadata
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_backup_provider.emulator import CLIENT_SECRET, FILE_SHARE_ITEM, SQL_ITEM, VM_ITEM, Emulator, Fault
from airflow_backup_provider.exceptions import (
    AzureBackupConfigError,
    AzureBackupJobFailedError,
    AzureBackupTransportError,
    AzureBackupTriggerEventError,
)
from airflow_backup_provider.operators.backup import TriggerBackupOperator
from airflow_backup_provider.protocol import RetryPolicy
from airflow_backup_provider.triggers.backup import BackupJobTrigger
from tests.conftest import DictTaskStateStore, RecordingTI

AIRFLOW_3_3 = importlib.metadata.version("apache-airflow") >= "3.3"
HOOK_PARAMS = {"retry_policy": RetryPolicy(backoff_base=0.05, backoff_max=0.2), "operation_poll_interval": 0.05}


def make_op(item: Any = VM_ITEM, **kwargs: Any) -> TriggerBackupOperator:
    return TriggerBackupOperator(
        task_id="trigger_backup",
        container_name=item.container_name,
        protected_item_name=item.protected_item_name,
        hook_params=HOOK_PARAMS,
        poll_interval=0.2,
        **{"job_lookup_grace": 1.0, **kwargs},
    )


def backup_jobs(emulator: Emulator) -> list[Any]:
    """Backup jobs started during this test (the seeded vault also holds days-old history)."""
    recent = datetime.now(timezone.utc) - timedelta(minutes=2)
    return [j for j in emulator.jobs if j.operation == "Backup" and j.start_time >= recent]


def posts(emulator: Emulator) -> list[Any]:
    return [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/backup")]


def test_execute_pushes_job_id_and_link_then_returns_it(emulator: Emulator) -> None:
    ti = RecordingTI()
    job_id = make_op().execute({"ti": ti})
    assert job_id == ti.xcom["job_id"]
    assert [j.job_id for j in backup_jobs(emulator)] == [job_id]
    url = ti.xcom["job_url"]
    assert isinstance(url, str) and url.startswith("https://portal.azure.com/#@")
    assert url.endswith(f"/backupJobs/{job_id}/overview")


@pytest.mark.parametrize(
    ("item", "kwargs", "expected"),
    [
        (VM_ITEM, {}, {"objectType": "IaasVMBackupRequest"}),
        (
            VM_ITEM,
            {"retain_until": "2099-01-01T00:00:00Z"},
            {"recoveryPointExpiryTimeInUTC": "2099-01-01T00:00:00.000Z"},
        ),
        (FILE_SHARE_ITEM, {}, {"objectType": "AzureFileShareBackupRequest"}),
        (
            SQL_ITEM,
            {"backup_type": "CopyOnlyFull", "enable_compression": True},
            {"backupType": "CopyOnlyFull", "enableCompression": True},
        ),
        (
            SQL_ITEM,
            {"backup_request": {"objectType": "AzureWorkloadBackupRequest", "backupType": "Log"}},
            {"backupType": "Log"},
        ),
    ],
)
def test_request_body_per_argument_path(
    emulator: Emulator, item: Any, kwargs: dict[str, Any], expected: dict[str, Any]
) -> None:
    make_op(item, **kwargs).execute({"ti": RecordingTI()})
    body = posts(emulator)[0].body["properties"]
    assert expected.items() <= body.items()


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"backup_type": "Full"}, "backup_type"),
        ({"retain_until": "2001-01-01T00:00:00Z"}, "retain_until"),
        ({"backup_request": {"objectType": "Nope"}}, "backup_request.objectType"),
        ({"container_name": "a/b"}, "container_name"),
    ],
)
def test_bad_input_names_field_and_value_before_any_post(
    emulator: Emulator, kwargs: dict[str, Any], field: str
) -> None:
    args = {"container_name": VM_ITEM.container_name, **kwargs}
    op = TriggerBackupOperator(
        task_id="t", protected_item_name=VM_ITEM.protected_item_name, hook_params=HOOK_PARAMS, **args
    )
    with pytest.raises(AzureBackupConfigError, match=field):
        op.execute({"ti": RecordingTI()})
    assert posts(emulator) == []


def test_constructor_rejects_bad_numbers() -> None:
    for bad in (-1, 0):
        with pytest.raises(AzureBackupConfigError, match="poll_interval"):
            TriggerBackupOperator(task_id="t", container_name="c", protected_item_name="i", poll_interval=bad)
    with pytest.raises(AzureBackupConfigError, match="wait_timeout"):
        TriggerBackupOperator(task_id="t", container_name="c", protected_item_name="i", wait_timeout=0)


def test_templated_fields() -> None:
    assert {
        "container_name",
        "protected_item_name",
        "vault_name",
        "resource_group_name",
        "backup_request",
        "retain_until",
    } <= set(TriggerBackupOperator.template_fields)


def test_retry_while_backup_runs_attaches_instead_of_second_backup(emulator: Emulator) -> None:
    first = make_op().execute({"ti": RecordingTI()})
    ti = RecordingTI(try_number=2)
    retried = make_op()
    second = retried.execute({"ti": ti})
    assert second == first == ti.xcom["job_id"]
    assert len(backup_jobs(emulator)) == 1
    assert [r.status for r in posts(emulator)] == [202, 400]  # Azure refused the second backup
    assert not retried.owns_job


def test_accepted_post_whose_operation_is_lost_still_yields_the_job(emulator: Emulator) -> None:
    # Azure accepts the POST, but the operation URL points at another host: the token is not sent there, and
    # the operator reads the operation on the ARM host instead. One POST, one job, owned by the task.
    emulator.add_fault(Fault(kind="foreign_async_host"))
    ti = RecordingTI()
    op = make_op()
    job_id = op.execute({"ti": ti})
    assert ti.xcom["job_id"] == job_id == backup_jobs(emulator)[0].job_id
    assert len(posts(emulator)) == 1 and op.owns_job
    assert not [r for r in emulator.requests if r.host.startswith("localhost")]


def test_accepted_post_with_unreadable_operation_finds_the_job(emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="foreign_async_host"))
    emulator.add_fault(Fault(kind="throttle", method="GET", path_regex="operationsStatus", count=20, retry_after=0))
    ti = RecordingTI()
    job_id = make_op().execute({"ti": ti})
    assert ti.xcom["job_id"] == job_id == backup_jobs(emulator)[0].job_id
    assert len(posts(emulator)) == 1


@pytest.mark.parametrize("kind", ["reset_after", "error_after"])
def test_post_acted_on_but_answer_lost_finds_its_job(emulator: Emulator, kind: str) -> None:
    # Azure started the backup, but the client saw a reset or a 500: never POST again, find the job instead.
    emulator.add_fault(Fault(kind=kind, method="POST"))
    ti = RecordingTI()
    op = make_op(job_lookup_grace=10.0)
    job_id = op.execute({"ti": ti})
    assert ti.xcom["job_id"] == job_id == backup_jobs(emulator)[0].job_id
    assert len(posts(emulator)) == 1 and op.owns_job


def test_post_answered_503_is_not_retried_and_looks_for_a_job(emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="unavailable", method="POST", retry_after=0))
    with pytest.raises(Exception, match="HTTP 503"):
        make_op().execute({"ti": RecordingTI()})
    assert len(posts(emulator)) == 1
    assert any("/backupJobs" in r.path and "$filter" in r.query for r in emulator.requests)


def test_uncertain_post_looks_for_a_running_job_before_failing(emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="reset", method="POST"))
    with pytest.raises(AzureBackupTransportError, match="may have acted"):
        make_op().execute({"ti": RecordingTI()})
    assert len(posts(emulator)) == 1  # never blindly re-posted
    assert any("/backupJobs" in r.path and "$filter" in r.query for r in emulator.requests)  # looked for the job


@pytest.mark.skipif(not AIRFLOW_3_3, reason="task_state_store / ResumableJobMixin need Airflow 3.3")
class TestDurableRetries:
    def test_retry_reconnects_to_stored_running_job(self, emulator: Emulator) -> None:
        store = DictTaskStateStore()
        first = make_op().execute({"ti": RecordingTI(), "task_state_store": store})
        assert store.data == {"azure_backup_job_id": {"job_id": first, "owned": True}}
        ti = RecordingTI(try_number=2)
        op = make_op()
        assert op.execute({"ti": ti, "task_state_store": store}) == first
        assert ti.xcom["job_id"] == first and op.owns_job
        assert len(posts(emulator)) == 1  # no second POST at all

    def test_retry_after_completed_job_does_not_back_up_again(self, emulator: Emulator) -> None:
        store = DictTaskStateStore()
        first = make_op(wait_for_completion=True).execute({"ti": RecordingTI(), "task_state_store": store})
        assert make_op().execute({"ti": RecordingTI(), "task_state_store": store}) == first
        assert len(posts(emulator)) == 1

    def test_warnings_with_fail_on_warnings_are_not_success_on_retry(self, emulator: Emulator) -> None:
        emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="CompletedWithWarnings", duration_seconds=60)
        store = DictTaskStateStore()
        with pytest.raises(AzureBackupJobFailedError, match="CompletedWithWarnings"):
            make_op(wait_for_completion=True, fail_on_warnings=True).execute(
                {"ti": RecordingTI(), "task_state_store": store}
            )
        emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=60)
        retried = make_op(wait_for_completion=True, fail_on_warnings=True)
        second = retried.execute({"ti": RecordingTI(), "task_state_store": store})
        assert len(posts(emulator)) == 2  # a fresh backup, not the one with warnings
        assert emulator.job(second).status == "Completed"

    def test_attached_job_stays_not_owned_across_retries(self, emulator: Emulator) -> None:
        make_op().execute({"ti": RecordingTI()})  # someone else's running backup
        store = DictTaskStateStore()
        make_op().execute({"ti": RecordingTI(), "task_state_store": store})
        assert store.data["azure_backup_job_id"]["owned"] is False
        retried = make_op(wait_for_completion=True, deferrable=True)
        with pytest.raises(TaskDeferred) as info:
            retried.execute({"ti": RecordingTI(), "task_state_store": store})
        assert not retried.owns_job
        assert not info.value.trigger.cancel_on_kill and not info.value.trigger.cancel_on_timeout
        retried.on_kill()
        assert not any(r.path.endswith("/cancel") for r in emulator.requests)

    def test_retry_finds_the_job_of_an_earlier_unresolved_post(self, emulator: Emulator) -> None:
        # Try 1: Azure starts the backup but the answer is lost, and the job search fails until the grace ends.
        store = DictTaskStateStore()
        emulator.add_fault(Fault(kind="reset_after", method="POST"))
        emulator.add_fault(Fault(kind="throttle", method="GET", path_regex="/backupJobs$", count=1000, retry_after=0))
        with pytest.raises(AzureBackupTransportError, match="may have acted"):
            make_op(job_lookup_grace=0.5).execute({"ti": RecordingTI(), "task_state_store": store})
        assert store.data["azure_backup_job_id"]["job_id"] is None  # the POST's time is kept instead
        # Try 2: it looks for that POST's job first, and finds it: still one POST, one backup.
        emulator.clear_faults()
        ti = RecordingTI()
        job_id = make_op().execute({"ti": ti, "task_state_store": store})
        assert len(posts(emulator)) == 1
        assert job_id == backup_jobs(emulator)[0].job_id == ti.xcom["job_id"]
        assert store.data["azure_backup_job_id"] == {"job_id": job_id, "owned": True}

    def test_unknown_status_counts_as_running(self) -> None:
        op = make_op()
        assert op.is_job_active("Queued") and op.is_job_active("InProgress")
        assert not op.is_job_active("Completed") and not op.is_job_active("NotFound")

    def test_retry_after_failed_job_starts_a_fresh_backup(self, emulator: Emulator) -> None:
        emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Failed", duration_seconds=60)
        store = DictTaskStateStore()
        with pytest.raises(AzureBackupJobFailedError):
            make_op(wait_for_completion=True).execute({"ti": RecordingTI(), "task_state_store": store})
        emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=60)
        second = make_op().execute({"ti": RecordingTI(), "task_state_store": store})
        assert store.data["azure_backup_job_id"] == {"job_id": second, "owned": True}
        assert len(posts(emulator)) == 2


@pytest.mark.parametrize(
    ("outcome", "fail_on_warnings", "error"),
    [
        ("Completed", False, None),
        ("CompletedWithWarnings", False, None),
        ("CompletedWithWarnings", True, "CompletedWithWarnings"),
        ("Failed", False, "ended Failed; error codes: "),
    ],
)
def test_wait_for_completion_polls_to_the_end(
    emulator: Emulator, outcome: str, fail_on_warnings: bool, error: str | None
) -> None:
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome=outcome, duration_seconds=300)
    op = make_op(wait_for_completion=True, fail_on_warnings=fail_on_warnings)
    if error is None:
        job_id = op.execute({"ti": RecordingTI()})
        assert [j.status for j in backup_jobs(emulator) if j.job_id == job_id] == [outcome]
    else:
        with pytest.raises(AzureBackupJobFailedError, match=error):
            op.execute({"ti": RecordingTI()})


def test_wait_timeout_cancels_the_job_it_started(emulator: Emulator) -> None:
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=10**6)
    op = make_op(wait_for_completion=True, wait_timeout=1.0)
    with pytest.raises(Exception, match="not finished after"):
        op.execute({"ti": RecordingTI()})
    assert any(r.path.endswith("/cancel") for r in emulator.requests)


def test_deferrable_wait_defers_with_plain_kwargs(emulator: Emulator) -> None:
    op = make_op(wait_for_completion=True, deferrable=True, wait_timeout=3600)
    with pytest.raises(TaskDeferred) as info:
        op.execute({"ti": RecordingTI()})
    trigger = info.value.trigger
    assert isinstance(trigger, BackupJobTrigger)
    assert info.value.method_name == "execute_complete"
    assert info.value.timeout is None  # the trigger enforces the deadline
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_backup_provider.triggers.backup.BackupJobTrigger"
    text = json.dumps(kwargs)
    assert CLIENT_SECRET not in text and kwargs["job_id"] == op.job_id
    assert time.time() < kwargs["end_time"] <= time.time() + 3600


@pytest.mark.parametrize(
    ("event", "outcome"),
    [
        ({"status": "success", "job_id": "j1", "message": "ok", "summary": {"job_id": "j1"}}, "j1"),
        ({"status": "warning", "job_id": "j1", "message": "warn", "summary": {"job_id": "j1"}}, "j1"),
        (
            {"status": "failed", "job_id": "j1", "message": "Azure Backup job j1 ended Failed"},
            AzureBackupJobFailedError,
        ),
        ({"status": "timeout", "job_id": "j1", "message": "late"}, Exception),
        ({"status": "error", "job_id": "j1", "message": "boom"}, AzureBackupTriggerEventError),
        ({"status": "mystery", "job_id": "j1", "message": "?"}, AzureBackupTriggerEventError),
        (None, AzureBackupTriggerEventError),
    ],
)
def test_execute_complete_validates_events(event: dict[str, Any] | None, outcome: Any) -> None:
    op = make_op()
    if isinstance(outcome, str):
        assert op.execute_complete({"ti": RecordingTI()}, event) == outcome
    else:
        with pytest.raises(outcome):
            op.execute_complete({"ti": RecordingTI()}, event)


class TestOnKill:
    def test_before_execute_is_a_no_op(self, emulator: Emulator) -> None:
        make_op().on_kill()
        assert not emulator.requests

    def test_cancels_the_job_it_started(self, emulator: Emulator) -> None:
        op = make_op()
        job_id = op.execute({"ti": RecordingTI()})
        op.on_kill()
        assert [r.status for r in emulator.requests if r.path.endswith(f"/backupJobs/{job_id}/cancel")] == [202]

    def test_does_not_cancel_a_job_it_only_attached_to(self, emulator: Emulator) -> None:
        make_op().execute({"ti": RecordingTI()})
        attached = make_op()
        attached.execute({"ti": RecordingTI()})
        attached.on_kill()
        assert not any(r.path.endswith("/cancel") for r in emulator.requests)

    def test_cancel_on_kill_false(self, emulator: Emulator) -> None:
        op = make_op(cancel_on_kill=False)
        op.execute({"ti": RecordingTI()})
        op.on_kill()
        assert not any(r.path.endswith("/cancel") for r in emulator.requests)

    def test_cancel_failure_is_logged_not_raised(self, emulator: Emulator, task_logs: Any) -> None:
        op = make_op()
        op.execute({"ti": RecordingTI()})
        emulator.add_fault(Fault(kind="unavailable", method="POST", path_regex="/cancel$"))
        op.on_kill()
        assert "Could not cancel backup job" in task_logs()
