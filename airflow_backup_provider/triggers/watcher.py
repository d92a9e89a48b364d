"""Batched job watching in the triggerer: one shared watcher per (connection, vault) per process.

Every batched :class:`~airflow_backup_provider.triggers.backup.BackupJobTrigger` of one event loop that waits for a
job of the same vault (same connection and hook parameters) subscribes to one :class:`VaultWatcher`. Per interval
(the shortest of its subscribers') the watcher runs one :func:`airflow_backup_provider.core.watching.poll_vault` — one
paged listing, plus a GET for each job the listing did not cover — and hands each subscriber what was learned about
its job. Subscribers come and go at any time; the last one to leave stops the watcher and releases the pooled
session and credential (:mod:`airflow_backup_provider.hooks.pool`). A triggerer restart re-creates the triggers from
their serialized kwargs; they subscribe again to the new process's watchers, which learn the jobs' start times
afresh. The rules live in :mod:`airflow_backup_provider.core.watching`; this module only schedules and delivers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import AzureError

from airflow_backup_provider.core.watching import (
    VaultPoll,
    WatchedJob,
    next_poll_delay,
    poll_vault,
    throttle_delay,
)
from airflow_backup_provider.exceptions import AzureBackupError
from airflow_backup_provider.hooks.backup import hook_params_from_plain
from airflow_backup_provider.hooks.pool import PooledAsyncHook
from airflow_backup_provider.protocol import (
    BackupJob,
    VaultRef,
    build_job_event,
    describe_job_failure,
    job_event_status,
)

if TYPE_CHECKING:
    from airflow_backup_provider.triggers.backup import BackupJobTrigger

log = logging.getLogger(__name__)

WatchKey = tuple[str, str, str, str]  # (conn id, resource group or "", vault or "", hook params as JSON)


@dataclass(frozen=True)
class WatchOutcome:
    """How a subscription ended: a terminal job, or an error message (the job is then as last seen, if ever)."""

    job: BackupJob | None = None
    error: str | None = None


@dataclass(eq=False)
class Subscription:
    """One trigger's interest in one job."""

    job_id: str
    poll_interval: float
    future: asyncio.Future[WatchOutcome]
    watcher: VaultWatcher | None = None
    last_seen: BackupJob | None = None


@dataclass(eq=False)
class VaultWatcher:
    """The shared poller of one vault (see the module docstring)."""

    key: WatchKey
    registry: WatcherRegistry
    subscriptions: dict[str, set[Subscription]] = field(default_factory=dict)
    jobs: dict[str, WatchedJob] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    closing: bool = False  # the poll loop ended; the pooled session and credential are being released
    polls: int = 0
    rng: random.Random = field(default_factory=random.Random)

    @property
    def interval(self) -> float:
        return min((s.poll_interval for subs in self.subscriptions.values() for s in subs), default=60.0)

    def add(self, sub: Subscription) -> None:
        sub.watcher = self
        self.subscriptions.setdefault(sub.job_id, set()).add(sub)
        self.jobs.setdefault(sub.job_id, WatchedJob(sub.job_id))

    def remove(self, sub: Subscription) -> bool:
        """Drop a subscription; True when the watcher has none left."""
        subs = self.subscriptions.get(sub.job_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self.subscriptions[sub.job_id]
                self.jobs.pop(sub.job_id, None)
        return not self.subscriptions

    def _hook(self) -> PooledAsyncHook:
        conn_id, _, _, params = self.key
        return PooledAsyncHook(conn_id, keepalive=2 * self.interval, **hook_params_from_plain(json.loads(params)))

    async def run(self) -> None:
        conn_id, rg, vault_name, _ = self.key
        hook = self._hook()
        try:
            try:
                await hook.acquire()
                vault = hook.vault_ref(rg or None, vault_name or None)
                await asyncio.sleep(next_poll_delay(self.interval, self.rng, first=True))
                while self.subscriptions:
                    poll = await self._poll(hook, vault)
                    self._deliver(poll)
                    if not self.subscriptions:
                        break
                    if poll.throttled_for is not None:  # Retry-After, once for the whole vault
                        delay = throttle_delay(self.interval, poll)
                    else:
                        delay = next_poll_delay(self.interval, self.rng)
                    await asyncio.sleep(delay)
            except asyncio.CancelledError:
                raise
            except (AzureBackupError, AzureError, Exception) as exc:  # a broken watcher must not leave waits hanging
                log.warning("Watcher of vault %s (connection %s) failed: %s", vault_name or "(default)", conn_id, exc)
                self._fail_all(f"{type(exc).__name__}: {exc}")
        finally:
            self.closing = True
            self.registry._forget(self)
            await hook.aclose()

    async def _poll(self, hook: PooledAsyncHook, vault: VaultRef) -> VaultPoll:
        self.polls += 1
        snapshot = dict(self.jobs)  # subscribers may come and go while the poll awaits
        return await hook.arun(poll_vault(hook.api, vault, snapshot, now=datetime.now(timezone.utc), clock=time.time))

    def _deliver(self, poll: VaultPoll) -> None:
        for job_id, observation in poll.observations.items():
            subs = self.subscriptions.get(job_id)
            if not subs:
                continue  # left during the poll
            if observation.error is not None:
                self._end(job_id, WatchOutcome(error=f"{type(observation.error).__name__}: {observation.error}"))
            elif observation.job is not None:
                for sub in subs:
                    sub.last_seen = observation.job
                if observation.job.is_terminal:
                    self._end(job_id, WatchOutcome(job=observation.job))
                else:
                    log.debug("Job %s: %s", job_id, observation.job.describe_progress())

    def _end(self, job_id: str, outcome: WatchOutcome) -> None:
        for sub in self.subscriptions.pop(job_id, set()):
            if not sub.future.done():
                sub.future.set_result(outcome)
        self.jobs.pop(job_id, None)

    def _fail_all(self, message: str) -> None:
        for job_id in list(self.subscriptions):
            self._end(job_id, WatchOutcome(error=message))


class WatcherRegistry:
    """The watchers of one event loop (use :func:`registry_for_loop`)."""

    def __init__(self) -> None:
        self.watchers: dict[WatchKey, VaultWatcher] = {}

    def subscribe(
        self,
        *,
        job_id: str,
        conn_id: str,
        resource_group_name: str | None,
        vault_name: str | None,
        hook_params: dict[str, Any],
        poll_interval: float,
    ) -> Subscription:
        key: WatchKey = (conn_id, resource_group_name or "", vault_name or "", json.dumps(hook_params, sort_keys=True))
        sub = Subscription(job_id, poll_interval, asyncio.get_running_loop().create_future())
        watcher = self.watchers.get(key)
        if watcher is None:
            watcher = self.watchers[key] = VaultWatcher(key, self)
            watcher.add(sub)
            watcher.task = asyncio.get_running_loop().create_task(watcher.run(), name=f"azure-backup-watch-{key[2]}")
        else:
            watcher.add(sub)
        return sub

    async def unsubscribe(self, sub: Subscription) -> None:
        """Leave; the last subscriber stops its watcher and waits until its session and credential are closed."""
        watcher = sub.watcher
        if watcher is None:
            return
        sub.watcher = None
        if watcher.remove(sub):
            self._forget(watcher)
            task = watcher.task
            if task is not None and not task.done():
                if not watcher.closing:  # still polling or sleeping: stop it (its cleanup is never interrupted)
                    task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    if not task.cancelled():  # our own caller is being cancelled, not just the watcher
                        raise

    def _forget(self, watcher: VaultWatcher) -> None:
        if self.watchers.get(watcher.key) is watcher:
            del self.watchers[watcher.key]


_REGISTRIES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, WatcherRegistry] = weakref.WeakKeyDictionary()


def registry_for_loop() -> WatcherRegistry:
    """The watcher registry of the running event loop."""
    loop = asyncio.get_running_loop()
    registry = _REGISTRIES.get(loop)
    if registry is None:
        registry = _REGISTRIES[loop] = WatcherRegistry()
    return registry


async def wait_batched(
    *,
    job_id: str,
    conn_id: str,
    resource_group_name: str | None,
    vault_name: str | None,
    hook_params: dict[str, Any],
    poll_interval: float,
    end_time: float,
) -> tuple[WatchOutcome | None, BackupJob | None]:
    """Wait for a job through the shared watcher until it ends or the Unix-time ``end_time`` passes.

    :return: (the outcome, or None at the deadline; the job as last seen).
    """
    registry = registry_for_loop()
    sub = registry.subscribe(
        job_id=job_id,
        conn_id=conn_id,
        resource_group_name=resource_group_name,
        vault_name=vault_name,
        hook_params=hook_params,
        poll_interval=poll_interval,
    )
    try:
        done, _ = await asyncio.wait({sub.future}, timeout=max(0.0, end_time - time.time()))
        return (sub.future.result() if done else None), sub.last_seen
    finally:
        await registry.unsubscribe(sub)


async def wait_batched_event(trigger: BackupJobTrigger) -> dict[str, Any]:
    """The event of a batched :class:`BackupJobTrigger`: the same events, messages and summaries as a per-job wait."""
    outcome, last_seen = await wait_batched(
        job_id=trigger.job_id,
        conn_id=trigger.azure_backup_conn_id,
        resource_group_name=trigger.resource_group_name,
        vault_name=trigger.vault_name,
        hook_params=trigger.hook_params,
        poll_interval=trigger.poll_interval,
        end_time=trigger.end_time,
    )
    if outcome is None:  # the deadline passed
        if last_seen is None or trigger.cancel_on_timeout:
            try:
                async with PooledAsyncHook(
                    trigger.azure_backup_conn_id, **hook_params_from_plain(trigger.hook_params)
                ) as hook:
                    if last_seen is None:  # the deadline came before the watcher's first poll: read it once
                        last_seen = await hook.aget_job(
                            trigger.job_id,
                            resource_group_name=trigger.resource_group_name,
                            vault_name=trigger.vault_name,
                        )
                    if trigger.cancel_on_timeout and not last_seen.is_terminal:
                        await trigger._cancel(hook, "deadline passed")
            except (AzureBackupError, AzureError) as exc:
                log.warning("Backup job %s at the deadline: %s", trigger.job_id, exc)
            if last_seen is not None and last_seen.is_terminal:
                return _terminal_event(trigger.job_id, last_seen)
        state = last_seen.status if last_seen else "not visible"
        return build_job_event(
            "timeout", trigger.job_id, f"Job {trigger.job_id} still {state} at the deadline", last_seen
        )
    if outcome.error is not None or outcome.job is None:
        return build_job_event("error", trigger.job_id, outcome.error or "no job")
    return _terminal_event(trigger.job_id, outcome.job)


def _terminal_event(job_id: str, job: BackupJob) -> dict[str, Any]:
    status = job_event_status(job)
    assert status is not None  # a terminal job always maps to an event
    message = describe_job_failure(job) if status == "failed" else f"Job {job.status}"
    return build_job_event(status, job_id, message, job)
