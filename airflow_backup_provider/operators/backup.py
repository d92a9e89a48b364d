"""Operator that triggers an on-demand Azure Backup and hands its job id to downstream tasks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf
from azure.core.exceptions import AzureError

from airflow_backup_provider import protocol
from airflow_backup_provider.assets import add_backup_outlet, emit_backup_asset_event
from airflow_backup_provider.core import BackupJobStatus
from airflow_backup_provider.exceptions import (
    AzureBackupAcceptedError,
    AzureBackupApiError,
    AzureBackupConfigError,
    AzureBackupError,
    AzureBackupNotFoundError,
    AzureBackupOperationError,
    AzureBackupOperationInProgressError,
    AzureBackupTransportError,
)
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.links.backup import (
    JOB_ID_XCOM_KEY,
    JOB_URL_XCOM_KEY,
    AzureBackupJobLink,
    push_job_xcom,
)
from airflow_backup_provider.operators import intent
from airflow_backup_provider.triggers.deferral import defer_job_wait
from airflow_backup_provider.version_compat import ResumableJobMixin

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

# Whether this task started the job (True) or attached to someone else's (False): only its own job is cancelled.
JOB_OWNED_XCOM_KEY = "job_owned"
# How far before our POST a job of the item may have started and still be the one the POST created.
CLOCK_SKEW = timedelta(minutes=2)
JOB_LOOKUP_INTERVAL = 5.0


def _required_job(external_id: Any) -> tuple[str, bool]:
    """:func:`_stored_job` of an id ResumableJobMixin reconnects to (submit_job always returns a job id)."""
    job_id, owned = _stored_job(external_id)
    if job_id is None:
        raise AzureBackupError(f"no backup job id in the task state store entry {external_id!r}")
    return job_id, owned


def _stored_job(external_id: Any) -> tuple[str | None, bool]:
    """The job id and ownership kept in the task state store (``{"job_id", "owned"}``).

    ``job_id`` is None for a POST whose job could not be found yet (``{"posted_at": ...}``, see ``submit_job``).
    """
    if isinstance(external_id, Mapping):
        job_id = external_id.get("job_id")
        return (str(job_id) if job_id else None), bool(external_id.get("owned"))
    return str(external_id), False  # a bare id: ownership unknown, so never cancel it


# The status reported to ResumableJobMixin for a stored job id Azure no longer knows: resubmit.
_JOB_GONE = "NotFound"


# Re-exported for compatibility: the XCom keys and their pusher now live with the link.
__all__ = ["JOB_ID_XCOM_KEY", "JOB_URL_XCOM_KEY", "TriggerBackupOperator", "push_job_xcom"]


class TriggerBackupOperator(ResumableJobMixin, BaseOperator):
    """
    Trigger an on-demand backup of a protected item and return the backup job id.

    The job id is pushed under XCom key ``job_id`` as soon as Azure reveals it, and returned (``return_value``).
    A retried task never starts a second backup of the same item: when Azure answers that a backup is already in
    progress (or a POST may have been acted on), the operator attaches to the running job; on Airflow 3.3 the job id
    is also kept in the task state store and a retry reconnects to it (``ResumableJobMixin``).

    .. seealso::
        :class:`airflow_backup_provider.sensors.backup.BackupJobSensor` waits for the job in reschedule mode.

    :param container_name: Container name as returned by the list APIs, e.g.
        ``IaasVMContainer;iaasvmcontainerv2;<rg>;<vm>``. (templated)
    :param protected_item_name: Protected item name, e.g. ``VM;iaasvmcontainerv2;<rg>;<vm>``. (templated)
    :param vault_name: Recovery Services vault; default: the connection's ``vault_name``. (templated)
    :param resource_group_name: The vault's resource group; default: the connection's. (templated)
    :param backup_request: The backup request ``properties`` (``objectType`` ``IaasVMBackupRequest``,
        ``AzureFileShareBackupRequest`` or ``AzureWorkloadBackupRequest``); default: inferred from the container
        (a VM gets an ``IaasVMBackupRequest``). (templated)
    :param backup_type: Workload backups: ``Full``, ``Differential``, ``Log``, ``CopyOnlyFull``... (templated)
    :param enable_compression: Workload backups: compress the backup.
    :param retain_until: Recovery point expiry (datetime or ISO-8601 string). (templated)
    :param azure_backup_conn_id: The Azure Backup connection id.
    :param wait_for_completion: Wait for the job to finish (poll, or defer when ``deferrable``).
    :param deferrable: Wait in the triggerer instead of a worker slot (with ``wait_for_completion``).
    :param cancel_on_kill: Cancel the job this task started when the task is killed.
    :param poll_interval: Seconds between job polls when waiting.
    :param wait_timeout: Seconds to wait for the job before failing (and cancelling when ``cancel_on_kill``).
    :param fail_on_warnings: Fail when the job ends ``CompletedWithWarnings``.
    :param hook_params: Extra keyword arguments for :class:`AzureBackupHook` (timeouts, retry policy).
    :param job_lookup_grace: Seconds to look for the job of a POST whose outcome is unknown (reset, 5xx, lost
        operation) before failing; such a job is attached to, never triggered again.
    """

    template_fields: Sequence[str] = (
        "container_name",
        "protected_item_name",
        "vault_name",
        "resource_group_name",
        "backup_request",
        "backup_type",
        "retain_until",
        "azure_backup_conn_id",
    )
    template_fields_renderers = {"backup_request": "json"}
    operator_extra_links = (AzureBackupJobLink(),)
    ui_color = "#0078d4"
    external_id_key = "azure_backup_job_id"

    def __init__(
        self,
        *,
        container_name: str,
        protected_item_name: str,
        vault_name: str | None = None,
        resource_group_name: str | None = None,
        backup_request: Mapping[str, Any] | None = None,
        backup_type: str | None = None,
        enable_compression: bool | None = None,
        retain_until: datetime | str | None = None,
        azure_backup_conn_id: str = AzureBackupHook.default_conn_name,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        cancel_on_kill: bool = True,
        poll_interval: float = 60.0,
        wait_timeout: float | timedelta = timedelta(days=7),
        fail_on_warnings: bool = False,
        hook_params: Mapping[str, Any] | None = None,
        job_lookup_grace: float = 120.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**add_backup_outlet(kwargs))
        self.job_lookup_grace = job_lookup_grace
        self.container_name = container_name
        self.protected_item_name = protected_item_name
        self.vault_name = vault_name
        self.resource_group_name = resource_group_name
        self.backup_request = backup_request
        self.backup_type = backup_type
        self.enable_compression = enable_compression
        self.retain_until = retain_until
        self.azure_backup_conn_id = azure_backup_conn_id
        self.wait_for_completion = wait_for_completion
        self.deferrable = deferrable
        self.cancel_on_kill = cancel_on_kill
        if poll_interval < protocol.MIN_POLL_INTERVAL:
            raise AzureBackupConfigError(
                "poll_interval", poll_interval, f"must be at least {protocol.MIN_POLL_INTERVAL} seconds"
            )
        self.poll_interval = poll_interval
        timeout = wait_timeout.total_seconds() if isinstance(wait_timeout, timedelta) else float(wait_timeout)
        if timeout <= 0:
            raise AzureBackupConfigError("wait_timeout", wait_timeout, "must be > 0")
        self.wait_timeout = timeout
        self.fail_on_warnings = fail_on_warnings
        self.hook_params = dict(hook_params or {})
        self.job_id: str | None = None
        # When an earlier try's request may have started a backup (its write-ahead intent), else None.
        self._intent_since: datetime | None = None
        # True only for a job this task started (or reconnected to from its own stored id): on_kill cancels only it.
        self.owns_job = False

    @cached_property
    def hook(self) -> AzureBackupHook:
        return AzureBackupHook(self.azure_backup_conn_id, **self.hook_params)

    def execute(self, context: Context) -> str:
        return self.execute_resumable(context)

    # -- ResumableJobMixin ------------------------------------------------------------------------------------------
    def submit_job(self, context: Context) -> dict[str, Any]:
        """Start the backup — unless an earlier try's POST already did (write-ahead intent, see ``intent``)."""
        body = self.hook.build_backup_request(
            self.container_name,
            backup_request=self.backup_request,
            backup_type=self.backup_type,
            enable_compression=self.enable_compression,
            retain_until=self.retain_until,
        )
        earlier = intent.read_intent(context, self.external_id_key)
        if earlier is not None:
            recovered = self._recover_earlier_request(context, earlier)
            if recovered is not None:
                return recovered
        posted_at = datetime.now(timezone.utc)
        # Durable before the POST: a worker killed after Azure accepted it leaves this for the retry to find.
        record = intent.write_intent(
            context, self.external_id_key, item=self.protected_item_name, operation="Backup", posted_at=posted_at
        )
        # A running job that refuses this POST can only be ours if an earlier try's request started it.
        self._intent_since = earlier.posted_at if earlier is not None else None
        self.log.info("Triggering %s backup of %s", body["properties"]["objectType"], self.protected_item_name)
        try:
            triggered = self.hook.trigger_backup(
                self.container_name,
                self.protected_item_name,
                backup_request=body,
                resource_group_name=self.resource_group_name,
                vault_name=self.vault_name,
                on_accepted=lambda handle: intent.record_operation(
                    context, self.external_id_key, record, handle.operation_id
                ),
            )
        except AzureBackupOperationInProgressError as exc:
            return self._attach_to_running_backup(context, exc)
        except AzureBackupOperationError as exc:
            if exc.error_code in protocol.OPERATION_IN_PROGRESS_CODES:
                return self._attach_to_running_backup(context, exc)
            raise
        except AzureBackupError as exc:
            return self._recover_uncertain_post(context, exc, posted_at)
        self.log.info(
            "Backup of %s started: job %s (operation %s)",
            self.protected_item_name,
            triggered.job_id,
            triggered.operation_id,
        )
        return self._remember_job(context, triggered.job_id, owned=True)

    # -- finding the job of a request (backups here; TriggerRestoreOperator reuses all of it for restores) -------------
    job_operation = "Backup"  # the job operation this operator's POST starts

    def _remember_found(self, context: Context, job_id: str) -> dict[str, Any]:
        """Remember a job this task's own request started (found after the fact)."""
        return self._remember_job(context, job_id, owned=True)

    def _jobs_of_request(self, posted_at: datetime) -> list[protocol.BackupJob]:
        """The item's jobs of ``job_operation`` a POST at ``posted_at`` may have started (a failed lookup raises)."""
        return self.hook.find_jobs_of_request(
            self.container_name,
            self.protected_item_name,
            posted_at,
            operation=self.job_operation,
            skew=CLOCK_SKEW,
            visible_within=self.job_lookup_grace,
            poll_interval=JOB_LOOKUP_INTERVAL,
            resource_group_name=self.resource_group_name,
            vault_name=self.vault_name,
        )

    def _recover_earlier_request(self, context: Context, earlier: intent.Intent) -> dict[str, Any] | None:
        """An earlier try may have started a job: attach to it as ours, or None when it provably did not.

        Lookup failures raise (the task fails and its next try looks again): only a successful search may lead to
        a second POST. A job of that request that failed or was cancelled is no reason not to run again.
        """
        what = self.job_operation.lower()
        self.log.warning(
            "An earlier try of this task sent a %s request at %s (%s); looking for its job before posting.",
            what,
            earlier.posted_at.isoformat(),
            earlier.source,
        )
        if earlier.operation_id:
            job_id = self._job_of_operation(earlier.operation_id)
            if job_id is not None:
                job = self.hook.get_job(
                    job_id, resource_group_name=self.resource_group_name, vault_name=self.vault_name
                )
                if protocol.attachable_jobs([job]):
                    self.log.info("The earlier try's operation %s started job %s", earlier.operation_id, job_id)
                    return self._remember_found(context, job_id)
                self.log.warning("The earlier try's %s job %s ended %s; starting anew.", what, job_id, job.status)
                return None
        jobs = self._jobs_of_request(earlier.posted_at)
        live = protocol.attachable_jobs(jobs)
        if len(live) > 1:
            raise self._ambiguous(live, earlier.posted_at, None)
        if live:
            job = live[0]
            self.log.info("Found job %s (%s) of the earlier try's request; attaching to it.", job.job_id, job.status)
            return self._remember_found(context, job.job_id)
        if jobs:
            self.log.warning(
                "The earlier try's %s job %s ended %s; starting anew.", what, jobs[0].job_id, jobs[0].status
            )
        else:
            self.log.info("No job of the earlier try's request exists; starting the %s.", what)
        return None

    def _job_of_operation(self, operation_id: str) -> str | None:
        """The job id an accepted operation reports (None while it does not know one, or if it failed)."""
        try:
            status = self.hook.get_operation_status(
                self.container_name,
                self.protected_item_name,
                operation_id,
                resource_group_name=self.resource_group_name,
                vault_name=self.vault_name,
            )
        except (AzureBackupError, AzureError) as exc:
            self.log.warning("Operation %s unreadable (%s); searching the item's jobs.", operation_id, exc)
            return None
        return status.job_id or None

    def _attach_to_running_backup(self, context: Context, cause: Exception) -> dict[str, Any]:
        """Azure refused a second backup: wait on the running one instead.

        It is this task's own when an earlier try of it posted a request at most ``CLOCK_SKEW`` after the job started
        (the current POST was refused, so it started nothing); otherwise someone else started it, and this task never
        cancels it.
        """
        self.log.warning("A backup of this item is already running (%s); attaching to it.", cause)
        job = self.hook.find_in_progress_backup(
            self.container_name,
            self.protected_item_name,
            resource_group_name=self.resource_group_name,
            vault_name=self.vault_name,
        )
        if job is None:
            raise cause
        since = self._intent_since
        owned = bool(since and job.start_time and job.start_time >= since - CLOCK_SKEW)
        self.log.info(
            "Attaching to running backup job %s (started %s; %s)",
            job.job_id,
            job.start_time,
            "started by this task's request" if owned else "started by someone else, never cancelled by this task",
        )
        return self._remember_job(context, job.job_id, owned=owned)

    def _recover_uncertain_post(self, context: Context, exc: AzureBackupError, posted_at: datetime) -> dict[str, Any]:
        """A POST failed in a way that may hide a started job: find it, or raise ``exc`` when the POST did not act.

        Accepted (202) but not followed → read the operation once more, else search. No answer the service may have
        acted on (reset, timeout, 408, 5xx) → search. Anything else (4xx, refused connection) → re-raise.
        """
        if isinstance(exc, AzureBackupAcceptedError):
            self.log.warning("%s", exc)
            job_id = self._job_of_operation(exc.operation_id) if exc.operation_id else None
            if job_id:
                self.log.info("Operation %s started job %s", exc.operation_id, job_id)
                return self._remember_found(context, job_id)
        elif isinstance(exc, AzureBackupTransportError):
            if not exc.may_have_acted:
                raise exc
        elif not isinstance(exc, AzureBackupApiError) or (exc.http_status < 500 and exc.http_status != 408):
            raise exc
        return self._find_job_started_since(context, exc, posted_at)

    def _find_job_started_since(self, context: Context, cause: Exception, posted_at: datetime) -> dict[str, Any]:
        """The POST may have started a job: look for it for up to ``job_lookup_grace`` seconds.

        When none is found, or the lookup fails, the original error is raised; the intent recorded before the POST
        stays, so the next try looks again before posting.
        """
        self.log.warning("The %s request may have been acted on (%s); looking for its job.", self.job_operation, cause)
        try:
            jobs = self._jobs_of_request(posted_at)
        except (AzureBackupError, AzureError) as exc:
            self.log.warning("Looking for the job failed (%s); the next try looks again before posting.", exc)
            raise cause from exc
        if len(jobs) > 1:
            raise self._ambiguous(jobs, posted_at, cause)
        if not jobs:
            self.log.warning(
                "No %s job of %s started since %s.", self.job_operation, self.protected_item_name, posted_at
            )
            raise cause
        self.log.info("Found %s job %s, started by our request at %s", self.job_operation, jobs[0].job_id, posted_at)
        return self._remember_found(context, jobs[0].job_id)

    def _ambiguous(self, jobs: list[protocol.BackupJob], posted_at: datetime, cause: Exception | None) -> Exception:
        ids = ", ".join(f"{j.job_id} ({j.status}, started {j.start_time})" for j in jobs)
        return AzureBackupError(
            f"Several {self.job_operation} jobs of {self.protected_item_name} may have been started by this task's "
            f"request at "
            f"{posted_at.isoformat()}: {ids}; not guessing which one."
            + (f" First error: {cause}" if cause is not None else "")
        )

    def _remember_job(self, context: Context, job_id: str, *, owned: bool) -> dict[str, Any]:
        """Make the job id known at once (XCom, log) and return what the task state store keeps across tries."""
        self.job_id = job_id
        self.owns_job = owned
        push_job_xcom(self.hook, context, job_id, self.hook.vault_ref(self.resource_group_name, self.vault_name))
        context["ti"].xcom_push(key=JOB_OWNED_XCOM_KEY, value=owned)
        return {"job_id": job_id, "owned": owned}

    def get_job_status(self, external_id: Any, context: Context) -> str:
        job_id, _ = _stored_job(external_id)
        if job_id is None:
            # An earlier try's write-ahead intent: submit_job looks for its job before it would post again.
            # (ResumableJobMixin then logs "resubmitting fresh": it does not know that submit_job attaches first.)
            self.log.info("An earlier try recorded a backup request but no job id; submit_job looks for its job.")
            return _JOB_GONE
        try:
            return self.hook.get_job(
                job_id, resource_group_name=self.resource_group_name, vault_name=self.vault_name
            ).status
        except AzureBackupNotFoundError:
            return _JOB_GONE

    def is_job_active(self, status: str) -> bool:
        # An unknown status is still running (the protocol's rule), not a reason to start another backup.
        return status != _JOB_GONE and not BackupJobStatus.is_terminal(status)

    def is_job_succeeded(self, status: str) -> bool:
        return protocol.status_is_success(status, fail_on_warnings=self.wait_for_completion and self.fail_on_warnings)

    # ResumableJobMixin returns this method's value on its reconnect path, so it returns the job id.
    def poll_until_complete(self, external_id: Any, context: Context) -> str:  # type: ignore[override]
        job_id, owned = _required_job(external_id)
        if self.job_id != job_id:  # reconnecting to the id stored by an earlier try of this task
            self.log.info("Reconnected to backup job %s from an earlier try", job_id)
            self._remember_job(context, job_id, owned=owned)
        if not self.wait_for_completion:
            return job_id
        if self.deferrable:
            # Never cancel a job this task only attached to.
            defer_job_wait(
                self,
                job_id=job_id,
                timeout=self.wait_timeout,
                poll_interval=self.poll_interval,
                cancel=self.cancel_on_kill and self.owns_job,
            )
        try:
            job = self.hook.wait_for_job(
                job_id,
                poll_interval=self.poll_interval,
                timeout=self.wait_timeout,
                resource_group_name=self.resource_group_name,
                vault_name=self.vault_name,
            )
        except protocol.AzureBackupTimeoutError:
            if self.cancel_on_kill and self.owns_job:
                self.hook.cancel_job_quietly(
                    job_id,
                    "wait_timeout passed",
                    resource_group_name=self.resource_group_name,
                    vault_name=self.vault_name,
                )
            raise
        protocol.check_job_outcome(job, fail_on_warnings=self.fail_on_warnings, item=self.protected_item_name)
        emit_backup_asset_event(self, context, self.hook, job, **self._asset_item())
        return job_id

    def get_job_result(self, external_id: Any, context: Context) -> str:
        job_id, owned = _required_job(external_id)
        if self.job_id != job_id:
            self._remember_job(context, job_id, owned=owned)
        return job_id

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> str:
        """Resume after the trigger: validate the event, fail on failure, return the job id."""
        protocol.resolve_job_event(event, job_id=None, fail_on_warnings=self.fail_on_warnings)
        assert event is not None  # resolve_job_event raised otherwise
        emit_backup_asset_event(self, context, self.hook, {"job_id": event["job_id"]}, **self._asset_item())
        return str(event["job_id"])

    def _asset_item(self) -> dict[str, Any]:
        """Where the asset event of this backup points (see :mod:`airflow_backup_provider.assets`)."""
        return {
            "protected_item_name": self.protected_item_name,
            "container_name": self.container_name,
            "resource_group_name": self.resource_group_name,
            "vault_name": self.vault_name,
        }

    def on_kill(self) -> None:
        """Cancel the job this task started (best effort, logged, never raises)."""
        if not self.cancel_on_kill:
            return
        if not self.job_id:
            self.log.info("Killed before a backup job id was known; nothing to cancel.")
            return
        if not self.owns_job:
            self.log.info("Not cancelling job %s: this task attached to it but did not start it.", self.job_id)
            return
        self.hook.cancel_job_quietly(
            self.job_id, "task killed", resource_group_name=self.resource_group_name, vault_name=self.vault_name
        )
