"""Sans-I/O rules of batched job watching: one listing per vault per interval instead of one GET per job.

A *watch* is the set of jobs of one vault that are waited for in one process. Every interval one flow
(:func:`poll_vault`) lists the vault's ``InProgress`` jobs that started since the oldest watched job
(:func:`listing_filter`), paged. A watched job found there is still running; a watched job missing from the listing
(it finished, is ``Cancelling``, is older than the window, or is not visible yet) is read with its own GET, so a
terminal job is always judged on the same body a per-job wait reads (:func:`jobs_needing_own_read`). A throttled
listing stops the whole poll: the ``Retry-After`` is honoured once for the vault (:class:`VaultPoll`). A listing that
fails otherwise falls back to one GET per job for that poll. Nothing here opens a socket, sleeps or reads a clock on
its own (the clock is a parameter).
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from airflow_backup_provider.core import (
    BackupApi,
    BackupJob,
    BackupJobStatus,
    Flow,
    VaultRef,
    build_job_filter,
    explain_job_not_found,
    get_job,
    list_pages,
    parse_job,
)
from airflow_backup_provider.core.errors import (
    AzureBackupError,
    AzureBackupNotFoundError,
    AzureBackupThrottledError,
)

log = logging.getLogger(__name__)

# A watched job whose start time is not known yet is looked for among the jobs started this long ago at most.
DEFAULT_LOOKBACK = timedelta(days=1)
# Clock skew between this host and the service, subtracted from the oldest start time of the window.
START_SKEW = timedelta(minutes=5)
# Each poll waits a random fraction of the interval in [1 - JITTER, 1]: never longer than the interval, never in phase.
JITTER = 0.2


@dataclass
class WatchedJob:
    """What a watch knows about one job: its start time (once seen) and when it was first polled (404 grace)."""

    job_id: str
    start_time: datetime | None = None
    first_polled: float | None = None
    last_seen: BackupJob | None = None


def listing_filter(
    watched: Iterable[WatchedJob], now: datetime, *, lookback: timedelta = DEFAULT_LOOKBACK
) -> str | None:
    """The ``$filter`` of a watch's listing: ``InProgress`` jobs started since the oldest watched job.

    A job whose start time is unknown widens the window to ``now - lookback``. The window ends a day from now, so
    jobs that start during the poll are in it. Returns None for an empty watch (nothing to list).
    """
    starts: list[datetime] = []
    for job in watched:
        starts.append(job.start_time if job.start_time is not None else now - lookback)
    if not starts:
        return None
    since = min(starts) - START_SKEW
    return build_job_filter(status=BackupJobStatus.IN_PROGRESS, start_time=since, end_time=now + timedelta(days=1))


def running_in_listing(watched: Iterable[str], listed: Iterable[BackupJob]) -> dict[str, BackupJob]:
    """The watched jobs the listing shows as still running (job ids compared case-insensitively).

    A listed job that is terminal (the filter is a hint the service may widen) is *not* covered: its verdict comes
    from its own GET, like every terminal verdict.
    """
    by_id = {job.job_id.lower(): job for job in listed if job.job_id and not job.is_terminal}
    return {job_id: by_id[job_id.lower()] for job_id in watched if job_id.lower() in by_id}


def jobs_needing_own_read(watched: Iterable[str], covered: Mapping[str, BackupJob]) -> list[str]:
    """The fan-out decision: which watched jobs get their own GET this poll (those the listing did not cover)."""
    return [job_id for job_id in watched if job_id not in covered]


def next_poll_delay(interval: float, rng: random.Random | None = None, *, first: bool = False) -> float:
    """Seconds until a watch polls again: a random point of the last ``JITTER`` of the interval.

    The first poll of a new watch comes at a random point of the whole interval, so watches created together (a
    triggerer start) do not poll together. Never longer than ``interval``: detection stays within one interval.
    """
    pick = (rng or random).random()
    if first:
        return interval * pick
    return interval * (1.0 - JITTER * pick)


@dataclass(frozen=True)
class Observation:
    """What one poll learned about one job: the job as read, or the error that ends its wait, or not visible yet."""

    job: BackupJob | None = None
    error: AzureBackupError | None = None
    not_visible: bool = False


@dataclass(frozen=True)
class VaultPoll:
    """The outcome of one poll of a watch.

    :param observations: per job id, what was learned (jobs absent here were not read: throttled before them).
    :param listed: whether the listing answered (False: it failed and jobs were read one by one, or throttled).
    :param throttled_for: the service asked to wait this many seconds before the vault's next request.
    """

    observations: dict[str, Observation] = field(default_factory=dict)
    listed: bool = False
    throttled_for: float | None = None


def poll_vault(
    api: BackupApi,
    vault: VaultRef,
    watched: Mapping[str, WatchedJob],
    *,
    now: datetime,
    clock: Callable[[], float] = time.time,
    not_found_grace: float = 600.0,
    lookback: timedelta = DEFAULT_LOOKBACK,
) -> Flow[VaultPoll]:
    """One poll of a watch: list, then GET the jobs the listing did not cover. Updates ``watched`` in place.

    Per-job rules are those of :func:`airflow_backup_provider.protocol.wait_for_job`: a 404 is waited out for
    ``not_found_grace`` seconds after the job's first poll when its vault exists (one vault GET per poll at most);
    a missing vault fails the job; another error after the request retries fails the job.
    """
    if not watched:
        return VaultPoll(listed=True)
    if api.policy.max_throttle_wait is None:
        # A throttled request is not slept through inside the poll: the watcher waits the whole Retry-After (not
        # capped) once for the vault, with every job of it.
        api = dataclasses.replace(api, policy=dataclasses.replace(api.policy, max_throttle_wait=0.0))
    observations: dict[str, Observation] = {}
    listed_ok = False
    covered: dict[str, BackupJob] = {}
    odata = listing_filter(watched.values(), now, lookback=lookback)
    try:
        listed = yield from list_pages(api, api.list_jobs(vault, odata), parse_job, None)
    except AzureBackupThrottledError as exc:
        log.warning("Listing the jobs of vault %s is throttled; waiting %s s.", vault.vault_name, exc.retry_after)
        return VaultPoll(throttled_for=exc.retry_after or 0.0)
    except AzureBackupError as exc:
        log.warning("Listing the jobs of vault %s failed (%s); reading each job instead.", vault.vault_name, exc)
    else:
        listed_ok = True
        covered = running_in_listing(watched, listed)
    polled_at = clock()
    for job_id, job in covered.items():
        _seen(watched[job_id], job, polled_at)
        observations[job_id] = Observation(job=job)
    vault_exists: bool | None = None
    for job_id in jobs_needing_own_read(watched, covered):
        state = watched[job_id]
        if state.first_polled is None:
            state.first_polled = polled_at
        try:
            job = yield from get_job(api, vault, job_id)
        except AzureBackupThrottledError as exc:
            log.warning("Reading job %s is throttled; waiting %s s.", job_id, exc.retry_after)
            return VaultPoll(observations, listed_ok, throttled_for=exc.retry_after or 0.0)
        except AzureBackupNotFoundError as exc:
            if clock() - state.first_polled > not_found_grace:
                observations[job_id] = Observation(error=exc)
                continue
            if vault_exists is None:
                try:
                    yield from explain_job_not_found(api, vault, job_id, exc)
                    vault_exists = True
                except AzureBackupNotFoundError as missing:
                    observations[job_id] = Observation(error=missing)
                    continue
            observations[job_id] = Observation(not_visible=True)
        except AzureBackupError as exc:
            observations[job_id] = Observation(error=exc)
        else:
            _seen(state, job, polled_at)
            observations[job_id] = Observation(job=job)
    return VaultPoll(observations, listed_ok)


def _seen(state: WatchedJob, job: BackupJob, polled_at: float) -> None:
    state.last_seen = job
    if state.first_polled is None:
        state.first_polled = polled_at
    if job.start_time is not None:
        start = job.start_time if job.start_time.tzinfo else job.start_time.replace(tzinfo=timezone.utc)
        state.start_time = start


def throttle_delay(interval: float, poll: VaultPoll) -> float:
    """Seconds until the next poll after ``poll``: the interval, or the service's ``Retry-After`` when longer."""
    if poll.throttled_for is None:
        return interval
    return max(interval, poll.throttled_for)


# --------------------------------------------------------------------------------------------------------------------
# Many jobs in one reschedule poke (BackupJobsSensor)
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobsVerdict:
    """Where a set of jobs stands: which still run (or were not seen), which failed, the summaries of all seen.

    :param pending: job ids not terminal yet (or not found), in the order asked.
    :param failed: ``(job id, message)`` of every job that ended Failed / Cancelled / Invalid (and warnings when asked).
    :param summaries: the summary of every terminal job, by id, in the order asked.
    """

    pending: list[str]
    failed: list[tuple[str, str]]
    summaries: dict[str, dict[str, object]]

    @property
    def done(self) -> bool:
        return not self.pending

    def describe_failures(self) -> str:
        return f"{len(self.failed)} of {len(self.summaries)} backup jobs did not succeed: " + " | ".join(
            message for _, message in self.failed
        )


def judge_jobs(job_ids: Iterable[str], jobs: Mapping[str, BackupJob], *, fail_on_warnings: bool = False) -> JobsVerdict:
    """Judge many jobs at once; ``jobs`` maps lower-case job ids to the job as read."""
    from airflow_backup_provider.core.verdicts import describe_job_failure, job_event_status

    pending: list[str] = []
    failed: list[tuple[str, str]] = []
    summaries: dict[str, dict[str, object]] = {}
    for job_id in job_ids:
        job = jobs.get(job_id.lower())
        if job is None or not job.is_terminal:
            pending.append(job_id)
            continue
        summaries[job_id] = job.summary()
        status = job_event_status(job)
        if status == "failed" or (status == "warning" and fail_on_warnings):
            failed.append((job_id, describe_job_failure(job)))
    return JobsVerdict(pending, failed, summaries)
