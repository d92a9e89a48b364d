"""Write-ahead intent: a try that died after Azure accepted its POST never leads to a second backup.

The earlier, dead try is played by a real POST that the emulator accepts (202) while its operation is held
InProgress, so that no job id ever reached the task — what a worker SIGKILLed in that window leaves behind. The
process kills themselves run in ``tests/faults`` and on the real stacks; these tests pin every branch of the rule.
"""

from __future__ import annotations

import importlib.metadata
import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_backup_provider import protocol
from airflow_backup_provider.emulator import VM_ITEM, Emulator, Fault
from airflow_backup_provider.exceptions import AzureBackupApiError
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.operators import intent
from tests.conftest import DictTaskStateStore, RecordingTI
from tests.operators.test_trigger_backup_operator import HOOK_PARAMS, backup_jobs, make_op, posts

AIRFLOW_3_3 = importlib.metadata.version("apache-airflow") >= "3.3"
KEY = "azure_backup_job_id"
needs_store = pytest.mark.skipif(not AIRFLOW_3_3, reason="the task state store needs Airflow 3.3")


def accepted_post_of_a_dead_try(emulator: Emulator) -> datetime:
    """POST a backup as the killed try did: Azure accepts it, the job id never reaches the task. Its send time."""
    return _dead_try(emulator)[0]


def _dead_try(emulator: Emulator, *, hold_operation: bool = True) -> tuple[datetime, str]:
    if hold_operation:  # the operation does not reveal the job id while the try is alive
        emulator.add_fault(Fault(kind="operation_in_progress", polls=10_000))
    hook = AzureBackupHook(**HOOK_PARAMS)
    item = hook.item_ref(VM_ITEM.container_name, VM_ITEM.protected_item_name)
    posted_at = datetime.now(timezone.utc)
    body = hook.build_backup_request(VM_ITEM.container_name)
    response = hook.run(protocol.call(hook.api.trigger_backup(item, body), hook.retry_policy))
    assert response.status == 202
    emulator.clear_faults()
    return posted_at, protocol.parse_operation_handle(response).operation_id


def stored_intent(posted_at: datetime, **extra: Any) -> DictTaskStateStore:
    store = DictTaskStateStore()
    store.data[KEY] = {
        "job_id": None,
        "owned": True,
        "posted_at": posted_at.isoformat(),
        "try_number": 1,
        "item": VM_ITEM.protected_item_name,
        "operation": "Backup",
        "operation_id": None,
        **extra,
    }
    return store


class RecordingStore(DictTaskStateStore):
    """Remembers how many backup POSTs the emulator had seen at each write."""

    def __init__(self, emulator: Emulator, *, refuse: bool = False) -> None:
        super().__init__()
        self.emulator = emulator
        self.refuse = refuse
        self.writes: list[tuple[int, object]] = []

    def set(self, key: str, value: object) -> None:
        if self.refuse:
            raise RuntimeError("task state store unavailable")
        self.writes.append((len(posts(self.emulator)), value))
        super().set(key, value)


@needs_store
def test_intent_is_durable_before_the_post_and_gains_the_operation_id(emulator: Emulator) -> None:
    store = RecordingStore(emulator)
    job_id = make_op().execute({"ti": RecordingTI(), "task_state_store": store})
    (posts_before, first), (_, second), (_, last) = store.writes
    assert posts_before == 0, "the intent was written after the POST"
    assert first["job_id"] is None and first["item"] == VM_ITEM.protected_item_name and first["operation"] == "Backup"
    assert second["operation_id"], "the accepted operation id was not recorded"
    assert last == {"job_id": job_id, "owned": True}


@needs_store
def test_a_store_that_refuses_the_intent_means_no_post(emulator: Emulator) -> None:
    with pytest.raises(RuntimeError, match="unavailable"):
        make_op().execute({"ti": RecordingTI(), "task_state_store": RecordingStore(emulator, refuse=True)})
    assert posts(emulator) == []


@needs_store
def test_retry_after_death_attaches_to_the_running_job_as_its_own(emulator: Emulator) -> None:
    store = stored_intent(accepted_post_of_a_dead_try(emulator))
    ti = RecordingTI(try_number=2)
    op = make_op()
    job_id = op.execute({"ti": ti, "task_state_store": store})
    assert len(posts(emulator)) == 1, "a second backup was posted"
    assert [j.job_id for j in backup_jobs(emulator)] == [job_id]
    assert emulator.job(job_id).status == "InProgress"
    assert op.owns_job and ti.xcom["job_owned"] is True and ti.xcom["job_id"] == job_id
    assert store.data[KEY] == {"job_id": job_id, "owned": True}


@needs_store
def test_retry_after_death_attaches_to_the_already_finished_job(emulator: Emulator) -> None:
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=1)
    store = stored_intent(accepted_post_of_a_dead_try(emulator))
    (job,) = backup_jobs(emulator)
    deadline = time.monotonic() + 30
    while emulator.job(job.job_id).status != "Completed":
        assert time.monotonic() < deadline, "the first job never finished"
        time.sleep(0.05)
    ti = RecordingTI(try_number=2)
    op = make_op(wait_for_completion=True)
    assert op.execute({"ti": ti, "task_state_store": store}) == job.job_id
    assert len(posts(emulator)) == 1, "Azure would have accepted a second backup here"
    assert op.owns_job and ti.xcom["job_owned"] is True


@needs_store
def test_retry_uses_the_recorded_operation_id(emulator: Emulator) -> None:
    posted_at, operation_id = _dead_try(emulator, hold_operation=False)
    (job,) = backup_jobs(emulator)
    emulator.clear_requests()
    store = stored_intent(posted_at, operation_id=operation_id)
    assert make_op().execute({"ti": RecordingTI(try_number=2), "task_state_store": store}) == job.job_id
    arm = [r for r in emulator.requests if r.path.startswith("/subscriptions/")]
    assert arm[0].path.endswith(f"/operationsStatus/{operation_id}")  # the operation is asked first
    assert posts(emulator) == []


@needs_store
def test_failed_lookup_never_posts(emulator: Emulator) -> None:
    store = stored_intent(accepted_post_of_a_dead_try(emulator))
    emulator.add_fault(Fault(kind="unavailable", method="GET", path_regex="/backupJobs$", count=10_000, retry_after=0))
    with pytest.raises(AzureBackupApiError):
        make_op().execute({"ti": RecordingTI(try_number=2), "task_state_store": store})
    assert len(posts(emulator)) == 1
    assert store.data[KEY]["job_id"] is None  # the next try looks again


@needs_store
def test_no_job_since_an_old_intent_proves_none_and_posts(emulator: Emulator) -> None:
    # The earlier try died before its POST reached Azure (its intent is older than the lookup grace).
    store = stored_intent(datetime.now(timezone.utc) - timedelta(seconds=5))
    ti = RecordingTI(try_number=2)
    op = make_op(job_lookup_grace=1.0)
    job_id = op.execute({"ti": ti, "task_state_store": store})
    assert len(posts(emulator)) == 1 and op.owns_job
    assert store.data[KEY] == {"job_id": job_id, "owned": True}


@needs_store
def test_earlier_failed_job_is_backed_up_again(emulator: Emulator) -> None:
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Failed", duration_seconds=1)
    store = stored_intent(accepted_post_of_a_dead_try(emulator))
    (failed,) = backup_jobs(emulator)
    while emulator.job(failed.job_id).status != "Failed":
        time.sleep(0.05)
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=60)
    job_id = make_op().execute({"ti": RecordingTI(try_number=2), "task_state_store": store})
    assert job_id != failed.job_id and len(posts(emulator)) == 2


@needs_store
def test_in_progress_refusal_after_an_intent_is_owned_but_without_one_is_not(emulator: Emulator) -> None:
    # Someone else's running backup: the refusal attaches, never owns.
    make_op().execute({"ti": RecordingTI()})
    op = make_op()
    ti = RecordingTI()
    op.execute({"ti": ti, "task_state_store": DictTaskStateStore()})
    assert not op.owns_job and ti.xcom["job_owned"] is False


def test_airflow2_retry_derives_the_intent_from_the_first_try_and_attaches(emulator: Emulator) -> None:
    """No task state store (Airflow 2.11): try 2 searches since the first try's start (here: the DAG run's)."""
    run_start = datetime.now(timezone.utc) - timedelta(seconds=1)
    accepted_post_of_a_dead_try(emulator)
    ti = RecordingTI(try_number=2)
    op = make_op()
    job_id = op.execute({"ti": ti, "dag_run": SimpleNamespace(start_date=run_start)})
    assert len(posts(emulator)) == 1
    assert op.owns_job and ti.xcom["job_owned"] is True and ti.xcom["job_id"] == job_id


def test_airflow2_first_try_has_no_intent() -> None:
    context = {"ti": RecordingTI(try_number=1), "dag_run": SimpleNamespace(start_date=datetime.now(timezone.utc))}
    assert intent.read_intent(context, KEY) is None


@needs_store
def test_recorded_operation_whose_job_failed_is_backed_up_again(emulator: Emulator) -> None:
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Failed", duration_seconds=1)
    posted_at, operation_id = _dead_try(emulator, hold_operation=False)
    (failed,) = backup_jobs(emulator)
    while emulator.job(failed.job_id).status != "Failed":
        time.sleep(0.05)
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=60)
    store = stored_intent(posted_at, operation_id=operation_id)
    job_id = make_op().execute({"ti": RecordingTI(try_number=2), "task_state_store": store})
    assert job_id != failed.job_id and len(posts(emulator)) == 2
