"""Batched BackupJobTriggers against the emulator: one listing per vault per poll, add/remove at any time, token
refresh, throttling once per vault, a failing listing, a job the listing misses, and a triggerer restart (triggers
re-created from serialize() in a fresh event loop)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from airflow_backup_provider.emulator import VAULT_NAME, Emulator, Fault
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.hooks.pool import pool_for_loop
from airflow_backup_provider.protocol import RetryPolicy, validate_job_event
from airflow_backup_provider.triggers.backup import BackupJobTrigger
from airflow_backup_provider.triggers.watcher import registry_for_loop

HOOK_PARAMS = {"retry_policy": RetryPolicy(backoff_base=0.05, backoff_max=0.2), "operation_poll_interval": 0.05}
LONG = 10**7  # virtual seconds: a job that runs until finished by the test
_COUNTER = itertools.count()


def start_jobs(emulator: Emulator, n: int, duration: float = LONG) -> list[str]:
    """Start ``n`` long backups in the seeded vault, each on its own new VM (one running backup per item)."""
    hook = AzureBackupHook(**HOOK_PARAMS)
    ids = []
    for _ in range(n):
        item = emulator.add_item(VAULT_NAME, "VM", f"vm-watch-{next(_COUNTER)}")
        emulator.set_item_behavior(item.protected_item_name, outcome="Completed", duration_seconds=duration)
        ids.append(hook.trigger_backup(item.container_name, item.protected_item_name).job_id)
    return ids


def make_trigger(job_id: str, **kwargs: Any) -> BackupJobTrigger:
    defaults: dict[str, Any] = {
        "hook_params": HOOK_PARAMS,
        "job_id": job_id,
        "azure_backup_conn_id": "azure_backup_default",
        "end_time": time.time() + 60,
        "poll_interval": 0.2,
    }
    return BackupJobTrigger(**{**defaults, **kwargs})


async def first_event(trigger: BackupJobTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("trigger ended without an event")


def listings(emulator: Emulator) -> int:
    return sum(1 for r in emulator.requests if r.method == "GET" and r.path.lower().endswith("/backupjobs"))


def job_gets(emulator: Emulator) -> int:
    return sum(1 for r in emulator.requests if r.method == "GET" and "/backupjobs/" in r.path.lower())


async def until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.02)


def test_batched_is_the_default_and_serialized() -> None:
    trigger = make_trigger("job-1")
    assert trigger.batched is True
    _, kwargs = trigger.serialize()
    assert kwargs["batched"] is True
    assert BackupJobTrigger(**{**kwargs, "batched": False}).serialize()[1]["batched"] is False


def test_many_waits_share_one_listing_and_get_their_own_summary(emulator: Emulator) -> None:
    ids = start_jobs(emulator, 6)

    async def go() -> list[dict[str, Any]]:
        tasks = [asyncio.create_task(first_event(make_trigger(j))) for j in ids]
        registry = registry_for_loop()
        await until(lambda: registry.watchers and next(iter(registry.watchers.values())).polls >= 3)
        assert len(registry.watchers) == 1 and pool_for_loop().open_sessions == 1
        assert pool_for_loop().open_credentials == 1
        emulator.clear_requests()
        watcher = next(iter(registry.watchers.values()))
        polls = watcher.polls
        await until(lambda: watcher.polls >= polls + 3)
        # Only listings while every job runs: one per poll, none per job.
        assert job_gets(emulator) == 0 and listings(emulator) >= 2
        for j in ids:
            emulator.finish_job(j, "Failed" if j == ids[0] else "Completed")
        events = await asyncio.gather(*tasks)
        assert registry.watchers == {} and pool_for_loop().open_sessions == 0  # closed with the last wait
        assert pool_for_loop().open_credentials == 0
        return events

    events = asyncio.run(go())
    assert [e["status"] for e in events] == ["failed"] + ["success"] * 5
    for job_id, event in zip(ids, events, strict=True):
        validate_job_event(event, job_id)
        assert event["summary"]["job_id"] == job_id
    assert "error codes: " in events[0]["message"]
    # Each terminal verdict came from the job's own GET: the same body a per-job wait reads.
    assert job_gets(emulator) == len(ids)
    assert sum(1 for r in emulator.requests if r.path.endswith("/oauth2/v2.0/token")) <= 1


def test_triggers_added_and_removed_at_any_time(emulator: Emulator) -> None:
    a, b, c = start_jobs(emulator, 3)

    async def go() -> None:
        registry = registry_for_loop()
        ta = asyncio.create_task(first_event(make_trigger(a)))
        await until(lambda: bool(registry.watchers) and next(iter(registry.watchers.values())).polls >= 1)
        watcher = next(iter(registry.watchers.values()))
        tb = asyncio.create_task(first_event(make_trigger(b)))  # joins a running watcher
        await until(lambda: b in watcher.jobs and watcher.polls >= 3)
        ta.cancel()  # the task was killed / the trigger moved: it leaves, the watcher keeps serving b
        await asyncio.gather(ta, return_exceptions=True)
        assert a not in watcher.jobs and registry.watchers
        emulator.finish_job(b)
        assert (await tb)["status"] == "success"
        assert registry.watchers == {}  # b was the last one
        # A new wait after the watcher stopped starts a new one.
        emulator.finish_job(c)
        assert (await first_event(make_trigger(c)))["status"] == "success"
        assert registry.watchers == {} and pool_for_loop().open_sessions == 0

    asyncio.run(go())


def test_token_refresh_is_shared_and_waits_survive_it(emulator: Emulator) -> None:
    ids = start_jobs(emulator, 3)

    async def go() -> list[dict[str, Any]]:
        emulator.clear_requests()  # the sign-in of the hook that started the jobs is not counted
        tasks = [asyncio.create_task(first_event(make_trigger(j))) for j in ids]
        registry = registry_for_loop()
        await until(lambda: bool(registry.watchers) and next(iter(registry.watchers.values())).polls >= 2)
        emulator.add_fault(Fault(kind="token_expiry", method="GET"))
        watcher = next(iter(registry.watchers.values()))
        polls = watcher.polls
        await until(lambda: watcher.polls >= polls + 2)
        for j in ids:
            emulator.finish_job(j)
        return await asyncio.gather(*tasks)

    assert [e["status"] for e in asyncio.run(go())] == ["success"] * 3
    tokens = [r for r in emulator.requests if r.path.endswith("/oauth2/v2.0/token")]
    assert len(tokens) == 2  # the first sign-in and one refresh for all three waits
    assert any(r.status == 401 for r in emulator.requests)


def test_throttling_is_honoured_once_for_the_vault(emulator: Emulator) -> None:
    ids = start_jobs(emulator, 4)

    async def go() -> list[dict[str, Any]]:
        tasks = [asyncio.create_task(first_event(make_trigger(j))) for j in ids]
        registry = registry_for_loop()
        await until(lambda: bool(registry.watchers) and next(iter(registry.watchers.values())).polls >= 1)
        emulator.clear_requests()
        emulator.add_fault(Fault(kind="throttle", method="GET", retry_after=1, count=1))
        watcher = next(iter(registry.watchers.values()))
        polls = watcher.polls
        await until(lambda: watcher.polls >= polls + 2)
        for j in ids:
            emulator.finish_job(j)
        return await asyncio.gather(*tasks)

    assert [e["status"] for e in asyncio.run(go())] == ["success"] * 4
    throttled = [r for r in emulator.requests if r.status == 429]
    assert len(throttled) == 1  # one request for the whole vault, not one per wait
    first_after = next(r for r in emulator.requests if r.timestamp > throttled[0].timestamp)
    assert (first_after.timestamp - throttled[0].timestamp).total_seconds() >= 0.9  # the vault waited the Retry-After


def test_failing_listing_falls_back_to_each_jobs_own_read(emulator: Emulator) -> None:
    ids = start_jobs(emulator, 2)
    for j in ids:
        emulator.finish_job(j)
    emulator.add_fault(Fault(kind="unavailable", method="GET", path_regex=r"/backupJobs$", retry_after=0, count=50))
    events = asyncio.run(_all(ids))
    assert [e["status"] for e in events] == ["success", "success"]
    assert job_gets(emulator) == 2 and any(r.status == 503 for r in emulator.requests)


def test_job_missing_from_the_listing_is_read_on_its_own(emulator: Emulator) -> None:
    # A job that already finished is not among the InProgress jobs the watcher lists.
    (done,) = start_jobs(emulator, 1)
    emulator.finish_job(done, "CompletedWithWarnings")
    (running,) = start_jobs(emulator, 1)

    async def go() -> list[dict[str, Any]]:
        t_done = asyncio.create_task(first_event(make_trigger(done)))
        t_running = asyncio.create_task(first_event(make_trigger(running)))
        first = await t_done
        assert not t_running.done()
        emulator.finish_job(running)
        return [first, await t_running]

    events = asyncio.run(go())
    assert [e["status"] for e in events] == ["warning", "success"]
    assert events[0]["summary"]["status"] == "CompletedWithWarnings"


def test_triggerer_restart_recreates_waits_from_serialized_kwargs(emulator: Emulator) -> None:
    ids = start_jobs(emulator, 3)
    serialized = [make_trigger(j).serialize() for j in ids]

    async def first_life() -> None:  # a triggerer that starts the waits and dies before they end
        tasks = [asyncio.create_task(first_event(BackupJobTrigger(**kw))) for _, kw in serialized]
        registry = registry_for_loop()
        await until(lambda: bool(registry.watchers) and next(iter(registry.watchers.values())).polls >= 2)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert registry.watchers == {} and pool_for_loop().open_sessions == 0

    asyncio.run(first_life())
    for j in ids:
        emulator.finish_job(j)
    emulator.clear_requests()
    events = asyncio.run(_all_from(serialized))  # a new process: a new loop, fresh watchers and pool
    assert [e["status"] for e in events] == ["success"] * 3
    assert job_gets(emulator) == 3


def test_deadline_gives_timeout_with_the_job_as_last_seen(emulator: Emulator) -> None:
    (job,) = start_jobs(emulator, 1)
    event = asyncio.run(first_event(make_trigger(job, end_time=time.time() + 0.5, cancel_on_timeout=True)))
    assert event["status"] == "timeout" and "InProgress" in event["message"]
    assert any(r.path.endswith(f"/backupJobs/{job}/cancel") for r in emulator.requests)


def test_per_job_switch_still_polls_its_own_job(emulator: Emulator) -> None:
    (job,) = start_jobs(emulator, 1)
    emulator.finish_job(job)
    event = asyncio.run(first_event(make_trigger(job, batched=False)))
    assert event["status"] == "success" and listings(emulator) == 0


async def _all(ids: list[str]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(first_event(make_trigger(j)) for j in ids)))


async def _all_from(serialized: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(first_event(BackupJobTrigger(**kw)) for _, kw in serialized)))
