"""BackupJobTrigger against the emulator: serialization, every event, deadline, cancellation, on_kill."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from airflow_backup_provider.emulator import CLIENT_SECRET, VM_ITEM, Emulator, Fault
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.protocol import RetryPolicy, validate_job_event
from airflow_backup_provider.triggers.backup import BackupJobTrigger

HOOK_PARAMS = {"retry_policy": RetryPolicy(backoff_base=0.05, backoff_max=0.2), "operation_poll_interval": 0.05}


def start_backup(emulator: Emulator, outcome: str = "Completed", duration: float = 120.0) -> str:
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome=outcome, duration_seconds=duration)
    return AzureBackupHook(**HOOK_PARAMS).trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name).job_id


def make_trigger(job_id: str, **kwargs: Any) -> BackupJobTrigger:
    defaults: dict[str, Any] = {
        "hook_params": HOOK_PARAMS,
        "job_id": job_id,
        "azure_backup_conn_id": "azure_backup_default",
        "end_time": time.time() + 60,
        "poll_interval": 0.1,
    }
    return BackupJobTrigger(**{**defaults, **kwargs})


def first_event(trigger: BackupJobTrigger) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("trigger ended without an event")

    return asyncio.run(go())


def test_serialize_round_trip_is_plain_json_without_secrets() -> None:
    trigger = make_trigger(
        "job-1", resource_group_name="rg", vault_name="v", cancel_on_timeout=True, cancel_on_kill=True
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_backup_provider.triggers.backup.BackupJobTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert CLIENT_SECRET not in json.dumps(kwargs)
    assert BackupJobTrigger(**kwargs).serialize() == (classpath, kwargs)


@pytest.mark.parametrize(
    ("outcome", "status"),
    [("Completed", "success"), ("CompletedWithWarnings", "warning"), ("Failed", "failed")],
)
def test_terminal_job_yields_a_validated_event(emulator: Emulator, outcome: str, status: str) -> None:
    job_id = start_backup(emulator, outcome=outcome)
    event = first_event(make_trigger(job_id))
    assert event["status"] == status and event["job_id"] == job_id
    assert event["summary"]["status"] == outcome
    validate_job_event(event, job_id)
    if status == "failed":
        assert "error codes: " in event["message"]


def test_job_not_found_at_first_is_waited_out(emulator: Emulator) -> None:
    emulator.add_fault(Fault(kind="job_not_found", count=2))
    job_id = start_backup(emulator)
    assert first_event(make_trigger(job_id))["status"] == "success"


def test_survives_throttling_and_token_expiry(emulator: Emulator) -> None:
    job_id = start_backup(emulator)
    emulator.add_fault(Fault(kind="throttle", method="GET", retry_after=0, count=2))
    emulator.add_fault(Fault(kind="token_expiry", method="GET"))
    assert first_event(make_trigger(job_id))["status"] == "success"


def test_deadline_yields_timeout_without_cancel_by_default(emulator: Emulator) -> None:
    job_id = start_backup(emulator, duration=10**6)
    event = first_event(make_trigger(job_id, end_time=time.time() + 0.3))
    assert event["status"] == "timeout" and "InProgress" in event["message"]
    assert not any(r.path.endswith("/cancel") for r in emulator.requests)


def test_deadline_cancels_when_asked(emulator: Emulator) -> None:
    job_id = start_backup(emulator, duration=10**6)
    event = first_event(make_trigger(job_id, end_time=time.time() + 0.3, cancel_on_timeout=True))
    assert event["status"] == "timeout"
    assert any(r.path.endswith(f"/backupJobs/{job_id}/cancel") for r in emulator.requests)
    # Only the request: the timeout event does not wait for the cancel operation to finish.
    assert not any("/operationResults/" in r.path for r in emulator.requests)


def test_persistent_transport_failure_is_an_error_event_and_never_cancels(emulator: Emulator) -> None:
    job_id = start_backup(emulator, duration=10**6)
    emulator.add_fault(Fault(kind="reset", method="GET", count=50))
    event = first_event(make_trigger(job_id, cancel_on_timeout=True))
    assert event["status"] == "error" and "reset" in event["message"]
    assert not any(r.path.endswith("/cancel") for r in emulator.requests)


def test_on_kill_cancels_only_when_asked(emulator: Emulator) -> None:
    job_id = start_backup(emulator, duration=10**6)
    asyncio.run(make_trigger(job_id).on_kill())
    assert not any(r.path.endswith("/cancel") for r in emulator.requests)
    asyncio.run(make_trigger(job_id, cancel_on_kill=True).on_kill())
    assert [r.status for r in emulator.requests if r.path.endswith(f"/backupJobs/{job_id}/cancel")] == [202]


def test_hook_session_is_closed_even_if_the_generator_is_abandoned(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    import gc

    job_id = start_backup(emulator)
    assert first_event(make_trigger(job_id))["status"] == "success"  # stops iterating after the first event
    gc.collect()
    assert "Unclosed client session" not in caplog.text
    assert "Unclosed connector" not in caplog.text
