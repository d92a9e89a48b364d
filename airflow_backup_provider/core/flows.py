"""Multi-step protocol flows as generators: trigger → follow the operation → job id, paging, cancel, waits.

Rule: a flow does not sleep or send; it yields :class:`~airflow_backup_provider.core.wire.Sleep` and
:class:`~airflow_backup_provider.core.wire.Send` and the hook that drives it (``requests`` + ``time.sleep`` or
``aiohttp`` + ``asyncio.sleep``, or a test's fake clock) performs them. Every wait of the provider is a flow here,
including the search for the job of an uncertain POST (:func:`find_jobs_of_request`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import urlsplit

from airflow_backup_provider.core.api import (
    BackupApi,
    ItemRef,
    VaultRef,
    build_job_filter,
    require_name,
)
from airflow_backup_provider.core.errors import (
    AzureBackupAcceptedError,
    AzureBackupApiError,
    AzureBackupError,
    AzureBackupNotFoundError,
    AzureBackupOperationError,
    AzureBackupThrottledError,
    AzureBackupTimeoutError,
)
from airflow_backup_provider.core.models import (
    BACKUP_MANAGEMENT_TYPES,
    BackupJob,
    BackupJobStatus,
    OperationStatus,
    OperationStatusValue,
    ProtectedItem,
    parse_job,
    parse_operation_status,
    parse_page,
    parse_protected_item,
)
from airflow_backup_provider.core.wire import (
    ApiRequest,
    ApiResponse,
    Flow,
    RetryPolicy,
    Sleep,
    _parse_body,
    call,
    call_parsed,
    parse_retry_after,
    redact_url,
)

log = logging.getLogger(__name__)

# 404 codes that alone prove a job's parent is gone (``ResourceNotFound`` does not: see explain_job_not_found).
PARENT_NOT_FOUND_CODES = frozenset({"ResourceGroupNotFound", "SubscriptionNotFound"})
# No wait loop polls faster than this, whatever it is configured with (quota of the subscription's reads).
MIN_POLL_INTERVAL = 0.1
# 200 resources per page (ResourceList) x 1000 pages: far beyond any vault; a guard against a nextLink loop.
MAX_PAGES = 1000

T = TypeVar("T")

# --------------------------------------------------------------------------------------------------------------------
# Flows (generators; see the module docstring)
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OperationHandle:
    """What a 202 says about the asynchronous operation it started."""

    operation_id: str
    status_url: str | None  # Azure-AsyncOperation: .../operationsStatus/{id} → OperationStatus
    result_url: str | None  # Location: .../operationResults/{id} → 202 while running, then 200/204
    retry_after: float | None


def parse_operation_handle(response: ApiResponse) -> OperationHandle:
    status_url = response.header("azure-asyncoperation")
    result_url = response.header("location")
    url = status_url or result_url
    if not url:
        raise AzureBackupApiError(
            http_status=response.status,
            error_code=None,
            message="202 without Azure-AsyncOperation or Location header",
            request_id=response.request_id,
            method="POST",
            url="",
        )
    return OperationHandle(
        operation_id=urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1],
        status_url=status_url,
        result_url=result_url,
        retry_after=parse_retry_after(response),
    )


@dataclass(frozen=True)
class WaitSettings:
    """How long and how often to poll an asynchronous operation (``Retry-After`` wins when present)."""

    poll_interval: float = 5.0
    timeout: float = 600.0
    clock: Callable[[], float] = time.time


def _poll_delay(
    response: ApiResponse | None, handle_retry_after: float | None, wait: WaitSettings, policy: RetryPolicy
) -> float:
    retry_after = parse_retry_after(response) if response is not None else None
    if retry_after is None:
        retry_after = handle_retry_after
    if retry_after is None:
        return wait.poll_interval
    # Never poll faster than 1 s (or the configured interval, if shorter) even when told "Retry-After: 0".
    return max(min(retry_after, policy.max_retry_after), min(wait.poll_interval, 1.0))


def wait_for_location(
    api: BackupApi, url: str, handle: OperationHandle, wait: WaitSettings, deadline: float | None = None
) -> Flow[ApiResponse]:
    """Poll a ``Location`` (operationResults) URL until it stops answering 202."""
    deadline = wait.clock() + wait.timeout if deadline is None else deadline
    request = api.follow(url, "Location", (200, 202, 204))
    delay = _poll_delay(None, handle.retry_after, wait, api.policy)
    while True:
        yield Sleep(delay)
        response = yield from call(request, api.policy)
        if response.status != 202:
            return response
        if wait.clock() >= deadline:
            raise AzureBackupTimeoutError(f"operation {handle.operation_id} still running after {wait.timeout:g} s")
        delay = _poll_delay(response, None, wait, api.policy)


def follow_operation(
    api: BackupApi, handle: OperationHandle, item: ItemRef | None, wait: WaitSettings
) -> Flow[OperationStatus]:
    """Follow a backup/restore operation to its final ``OperationStatus`` (which carries the jobId).

    With ``Azure-AsyncOperation`` the status URL is polled directly. With only ``Location``, the result URL is polled
    until done and then the item's ``operationsStatus/{operationId}`` is read for the jobId.
    """
    deadline = wait.clock() + wait.timeout
    if handle.status_url:
        request = api.follow(handle.status_url, "Azure-AsyncOperation", (200,))
    else:
        if item is None or handle.result_url is None:
            raise AzureBackupApiError(
                http_status=202,
                error_code=None,
                message="operation has no status URL and no item to read its status from",
                request_id=None,
                method="GET",
                url="",
            )
        yield from wait_for_location(api, handle.result_url, handle, wait, deadline)
        request = api.get_item_operation_status(item, handle.operation_id)
    # After a finished Location poll the status is ready: read it at once.
    delay = _poll_delay(None, handle.retry_after, wait, api.policy) if handle.status_url else 0.0
    while True:
        if delay:
            yield Sleep(delay)
        response = yield from call(request, api.policy)
        status = _parse_body(request, response, parse_operation_status)
        if status.status == OperationStatusValue.SUCCEEDED:
            return status
        if status.status in OperationStatusValue.FAILURE_STATUSES:
            raise AzureBackupOperationError(
                operation_id=handle.operation_id,
                status=status.status,
                error_code=status.error_code,
                message=status.error_message,
                job_id=status.job_id,
            )
        if wait.clock() >= deadline:
            raise AzureBackupTimeoutError(
                f"operation {handle.operation_id} still {status.status} after {wait.timeout:g} s"
            )
        delay = _poll_delay(response, None, wait, api.policy)


@dataclass(frozen=True)
class TriggeredOperation:
    """The result of a trigger: the operation handle and, once followed, the job id."""

    operation_id: str
    job_id: str


def trigger_and_follow(
    api: BackupApi,
    request: ApiRequest,
    item: ItemRef,
    wait: WaitSettings,
    on_accepted: Callable[[OperationHandle], None] | None = None,
) -> Flow[TriggeredOperation]:
    """POST a backup/restore trigger, then follow its operation to the jobId.

    Once Azure has answered 202 the backup may be running, so every later failure to learn its job id is raised as
    :class:`AzureBackupAcceptedError` (callers look for the job instead of triggering again); only the service's own
    final word on the operation (Failed / Canceled / Invalid) stays an :class:`AzureBackupOperationError`.
    """
    response = yield from call(request, api.policy)
    try:
        handle = parse_operation_handle(response)
    except AzureBackupError as exc:
        raise AzureBackupAcceptedError(operation_id="", cause=exc) from exc
    log.info("Azure accepted the request; operation %s (x-ms-request-id=%s).", handle.operation_id, response.request_id)
    if on_accepted is not None:
        on_accepted(handle)  # e.g. record the operation id durably before the long wait for the job id
    try:
        status = yield from follow_operation(api, handle, item, wait)
    except AzureBackupOperationError:
        raise  # the service's own final answer
    except AzureBackupError as exc:
        # The backup may be running even though we could not learn its job id: never report a plain failure.
        raise AzureBackupAcceptedError(operation_id=handle.operation_id, cause=exc) from exc
    if not status.job_id:
        no_job = AzureBackupOperationError(
            operation_id=handle.operation_id,
            status=status.status,
            error_code=None,
            message="the operation succeeded but returned no jobId",
        )
        raise AzureBackupAcceptedError(operation_id=handle.operation_id, cause=no_job) from no_job
    return TriggeredOperation(operation_id=handle.operation_id, job_id=status.job_id)


def get_job(api: BackupApi, vault: VaultRef, job_id: str) -> Flow[BackupJob]:
    return (yield from call_parsed(api.get_job(vault, require_name("job_id", job_id)), api.policy, parse_job))


def list_pages(api: BackupApi, first: ApiRequest, parse_item: Callable[[Any], T], limit: int | None) -> Flow[list[T]]:
    """Read a pageable list, following ``nextLink`` (ARM host only) until the end or ``limit`` items."""
    items: list[T] = []
    request = first
    for _ in range(MAX_PAGES):
        page, next_link = yield from call_parsed(request, api.policy, lambda body: parse_page(body, parse_item))
        items.extend(page)
        if not next_link or (limit is not None and len(items) >= limit):
            return items[:limit] if limit is not None else items
        request = api.follow(next_link, "nextLink", (200,), replace_api_version=True)
    raise AzureBackupApiError(
        http_status=200,
        error_code=None,
        message=f"more than {MAX_PAGES} pages; refusing to follow nextLink further",
        request_id=None,
        method="GET",
        url=redact_url(first.url),
    )


def cancel_job(api: BackupApi, vault: VaultRef, job_id: str, wait: WaitSettings, *, follow: bool = True) -> Flow[None]:
    """Request cancellation of a job; with ``follow``, also wait until the cancel operation is done."""
    response = yield from call(api.cancel_job(vault, require_name("job_id", job_id)), api.policy)
    handle = parse_operation_handle(response)
    log.info("Cancellation of job %s accepted (operation %s).", job_id, handle.operation_id)
    if not follow:
        return
    if handle.result_url:
        yield from wait_for_location(api, handle.result_url, handle, wait)
    elif handle.status_url:
        yield from follow_operation(api, handle, None, wait)


def find_item_backup_jobs(
    api: BackupApi,
    vault: VaultRef,
    item: ProtectedItem,
    *,
    start: datetime,
    end: datetime,
    status: str | None = None,
    operation: str = "Backup",
) -> Flow[list[BackupJob]]:
    """Jobs of ``operation`` (Backup, Restore) of ``item`` that started between ``start`` and ``end``, newest first."""
    odata = build_job_filter(
        status=status,
        operation=operation,
        backup_management_type=item.backup_management_type
        if item.backup_management_type in BACKUP_MANAGEMENT_TYPES
        else None,
        start_time=start,
        end_time=end,
    )
    jobs = yield from list_pages(api, api.list_jobs(vault, odata), parse_job, None)
    matches = [job for job in jobs if job_matches_item(job, item)]
    matches.sort(key=lambda j: j.start_time or datetime.min.replace(tzinfo=timezone.utc), reverse=True)
    return matches


def find_in_progress_backup(
    api: BackupApi, vault: VaultRef, item: ProtectedItem, now: datetime
) -> Flow[BackupJob | None]:
    """Find *the* running backup job of ``item`` (to attach to instead of starting a second backup).

    Two running candidates mean the match is ambiguous (jobs name their item only loosely): then None.
    """
    jobs = yield from find_item_backup_jobs(
        api,
        vault,
        item,
        start=now - timedelta(days=7),
        end=now + timedelta(minutes=5),
        status=BackupJobStatus.IN_PROGRESS,
    )
    if len(jobs) > 1:
        log.warning(
            "%d running backup jobs match %s (%s); not attaching to any of them.",
            len(jobs),
            item.protected_item_name,
            ", ".join(j.job_id for j in jobs),
        )
        return None
    return jobs[0] if jobs else None


def job_matches_item(job: BackupJob, item: ProtectedItem) -> bool:
    """Jobs name their item only loosely: friendly name, management type, and container or storage account."""
    if not job.entity_friendly_name or not item.friendly_name:
        return False
    if job.entity_friendly_name.lower() != item.friendly_name.lower():
        return False
    if (
        job.backup_management_type
        and item.backup_management_type
        and job.backup_management_type.lower() != item.backup_management_type.lower()
    ):
        return False
    container = (item.container_name or "").lower()
    if job.container_name and container:
        a = job.container_name.lower()
        return a.endswith(container) or container.endswith(a)
    if job.storage_account_name and container:
        # File share containers are StorageContainer;Storage;{rg};{account}.
        return container.rsplit(";", 1)[-1] == job.storage_account_name.lower()
    return True


def attachable_jobs(jobs: Iterable[BackupJob]) -> list[BackupJob]:
    """Of the jobs an earlier try's request started, those a retry attaches to instead of posting again.

    A failed, cancelled or cancelling job made no backup (or restore): the retry starts a new one.
    """
    ended_badly = BackupJobStatus.FAILURE_STATUSES | {BackupJobStatus.CANCELLING}
    return [job for job in jobs if job.status not in ended_badly]


def jobs_started_by_request(jobs: Iterable[BackupJob], posted_at: datetime, skew: timedelta) -> list[BackupJob]:
    """Of an item's backup jobs, those a POST sent at ``posted_at`` may have created.

    A job that ended before the POST is not it. Jobs started after the POST win; only without one do jobs that
    started up to ``skew`` earlier count (the service's clock is not ours).
    """
    candidates = [j for j in jobs if not (j.end_time and j.end_time < posted_at)]
    after = [j for j in candidates if j.start_time and j.start_time >= posted_at]
    if after:
        return after
    return [j for j in candidates if j.start_time is None or j.start_time >= posted_at - skew]


def find_jobs_of_request(
    api: BackupApi,
    item: ItemRef,
    posted_at: datetime,
    *,
    operation: str = "Backup",
    skew: timedelta,
    visible_within: float,
    poll_interval: float,
    now: Callable[[], datetime],
) -> Flow[list[BackupJob]]:
    """The jobs a POST sent at ``posted_at`` may have started, finished ones included (see jobs_started_by_request).

    A job shows in the listing a little after its POST; until ``visible_within`` seconds after ``posted_at`` an empty
    search is repeated, after that it proves there is no such job. A failing lookup raises: only a search that
    succeeded can prove a POST started nothing.
    """
    found = yield from call_parsed(api.get_protected_item(item), api.policy, parse_protected_item)
    while True:
        jobs = yield from find_item_backup_jobs(
            api, item.vault, found, start=posted_at - skew, end=now() + timedelta(minutes=5), operation=operation
        )
        candidates = jobs_started_by_request(jobs, posted_at, skew)
        remaining = (posted_at + timedelta(seconds=visible_within) - now()).total_seconds()
        if candidates or remaining <= 0:
            return candidates
        log.info("No %s job of %s since %s yet; looking again.", operation, item.protected_item_name, posted_at)
        yield Sleep(min(max(poll_interval, MIN_POLL_INTERVAL), remaining))


def explain_job_not_found(api: BackupApi, vault: VaultRef, job_id: str, error: AzureBackupNotFoundError) -> Flow[None]:
    """Decide what a 404 on a job GET means: return when the job is just not visible yet, raise when waiting is futile.

    ARM answers ``ResourceNotFound`` both for a missing vault and (undocumented) for a job it does not show yet, so
    the code alone proves only a missing resource group or subscription. Otherwise one GET of the vault decides:
    it exists → the job is not visible yet; it is missing → fail at once, naming the vault.
    """
    if error.error_code in PARENT_NOT_FOUND_CODES:
        raise error
    try:
        yield from call(api.get_vault(vault), api.policy)
    except AzureBackupNotFoundError as missing:
        raise AzureBackupNotFoundError(
            http_status=missing.http_status,
            error_code=missing.error_code,
            message=(
                f"vault {vault.vault_name!r} in resource group {vault.resource_group_name!r} (subscription "
                f"{vault.subscription_id}) does not exist, so job {job_id} never will: {missing.error_message}"
            ),
            request_id=missing.request_id,
            method=missing.method,
            url=missing.url,
        ) from error


@dataclass(frozen=True)
class JobWaitResult:
    """How a wait for a job ended: the last job seen and whether it is terminal (else the deadline passed)."""

    job: BackupJob | None
    timed_out: bool


def wait_for_job(
    api: BackupApi,
    vault: VaultRef,
    job_id: str,
    *,
    poll_interval: float,
    deadline: float,
    not_found_grace: float = 600.0,
    clock: Callable[[], float] = time.time,
) -> Flow[JobWaitResult]:
    """Poll a job until it is terminal or the (wall-clock) deadline passes.

    A job that answers 404 right after its trigger is polled again for ``not_found_grace`` seconds when its vault
    exists (:func:`explain_job_not_found`); a missing vault, resource group or subscription fails at once. Throttling
    that outlasts the per-request retries is waited out (``Retry-After``, bounded by the deadline), never a failure.
    """
    first_poll = clock()
    job: BackupJob | None = None
    while True:
        delay = poll_interval
        try:
            job = yield from get_job(api, vault, job_id)
        except AzureBackupNotFoundError as exc:
            if clock() - first_poll > not_found_grace:
                raise
            yield from explain_job_not_found(api, vault, job_id, exc)
            log.warning("Job %s not found yet (its vault exists); polling again.", job_id)
        except AzureBackupThrottledError as exc:
            delay = max(poll_interval, exc.retry_after or 0.0)
            log.warning("Reading job %s is throttled; waiting %.0f s as the service asked.", job_id, delay)
        else:
            log.info("Job %s (%s): %s", job_id, job.entity_friendly_name, job.describe_progress())
            if job.is_terminal:
                return JobWaitResult(job, timed_out=False)
        remaining = deadline - clock()
        if remaining <= 0:
            return JobWaitResult(job, timed_out=True)
        yield Sleep(min(max(delay, MIN_POLL_INTERVAL), remaining))
