"""Sensor that waits for an Azure Backup job, in reschedule mode by default."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_backup_provider import protocol
from airflow_backup_provider.assets import add_backup_outlet, emit_backup_asset_event
from airflow_backup_provider.core import RetryPolicy
from airflow_backup_provider.exceptions import (
    AzureBackupConfigError,
    AzureBackupNotFoundError,
    AzureBackupThrottledError,
)
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.links.backup import AzureBackupJobLink, push_job_xcom
from airflow_backup_provider.triggers.deferral import defer_job_wait
from airflow_backup_provider.version_compat import AirflowRescheduleException

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


# Throttle waits a reschedule-mode poke sits through in its slot; a longer Retry-After reschedules the task instead.
RESCHEDULE_MAX_THROTTLE_WAIT = 5.0


class BackupJobSensor(BaseSensorOperator):
    """
    Wait until a backup job reaches a terminal status.

    ``Completed`` succeeds; ``CompletedWithWarnings`` succeeds with a warning (fails with ``fail_on_warnings``);
    ``Failed`` / ``Cancelled`` / ``Invalid`` fail with
    :class:`~airflow_backup_provider.exceptions.AzureBackupJobFailedError` naming the job, the item, the
    error codes, errorString and recommendations. When done, the job summary (id, status, item, operation,
    start, end, duration, backup size) is the sensor's return value.

    Runs in ``reschedule`` mode by default: no worker slot is held between pokes. With ``deferrable=True`` it checks
    once, then waits in the triggerer (:class:`~airflow_backup_provider.triggers.backup.BackupJobTrigger`).

    :param job_id: The job id, usually ``{{ ti.xcom_pull(task_ids='trigger_backup') }}``. (templated)
    :param vault_name: Vault; default: the connection's. (templated)
    :param resource_group_name: Resource group; default: the connection's. (templated)
    :param azure_backup_conn_id: The Azure Backup connection id.
    :param fail_on_warnings: Fail on ``CompletedWithWarnings``.
    :param cancel_on_timeout: Cancel the job when the sensor times out.
    :param deferrable: Wait in the triggerer.
    :param hook_params: Extra keyword arguments for :class:`AzureBackupHook`.
    """

    template_fields: Sequence[str] = ("job_id", "vault_name", "resource_group_name", "azure_backup_conn_id")
    operator_extra_links = (AzureBackupJobLink(),)
    ui_color = "#50a0e0"

    def __init__(
        self,
        *,
        job_id: str,
        vault_name: str | None = None,
        resource_group_name: str | None = None,
        azure_backup_conn_id: str = AzureBackupHook.default_conn_name,
        mode: str = "reschedule",
        poke_interval: float | timedelta = 60,
        fail_on_warnings: bool = False,
        cancel_on_timeout: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(mode=mode, poke_interval=poke_interval, **add_backup_outlet(kwargs))
        self.job_id = job_id
        self.vault_name = vault_name
        self.resource_group_name = resource_group_name
        self.azure_backup_conn_id = azure_backup_conn_id
        self.fail_on_warnings = fail_on_warnings
        self.cancel_on_timeout = cancel_on_timeout
        self.deferrable = deferrable
        self.hook_params = dict(hook_params or {})

    @cached_property
    def hook(self) -> AzureBackupHook:
        params = dict(self.hook_params)
        if self.mode == "reschedule" and not self.deferrable:
            # A throttled poke hands its slot back and comes back after Retry-After, instead of sleeping in it.
            policy = params.get("retry_policy") or RetryPolicy()
            if isinstance(policy, Mapping):
                policy = RetryPolicy(**policy)
            params["retry_policy"] = dataclasses.replace(policy, max_throttle_wait=RESCHEDULE_MAX_THROTTLE_WAIT)
        return AzureBackupHook(self.azure_backup_conn_id, **params)

    def _checked_job_id(self) -> str:
        job_id = self.job_id
        if not isinstance(job_id, str) or not job_id.strip() or job_id.strip() == "None":
            raise AzureBackupConfigError("job_id", job_id, "is empty; did the trigger task push its job id to XCom?")
        return protocol.require_name("job_id", job_id.strip())

    def poke(self, context: Context) -> bool | PokeReturnValue:
        job_id = self._checked_job_id()
        try:
            job = self.hook.get_job(job_id, resource_group_name=self.resource_group_name, vault_name=self.vault_name)
        except AzureBackupNotFoundError as exc:
            # Raises when the vault (or its group / subscription) is gone: waiting will not help.
            self.hook.explain_job_not_found(
                job_id, exc, resource_group_name=self.resource_group_name, vault_name=self.vault_name
            )
            # Right after a trigger the job may not be visible yet; the sensor timeout bounds this.
            self.log.warning("Backup job %s not found yet (its vault exists); will poke again.", job_id)
            return False
        except AzureBackupThrottledError as exc:
            return self._throttled(exc)
        self.log.info("Backup job %s (%s): %s", job_id, job.entity_friendly_name, job.describe_progress())
        if not job.is_terminal:
            return False
        summary = protocol.check_job_outcome(job, fail_on_warnings=self.fail_on_warnings)
        push_job_xcom(self.hook, context, job_id, self.hook.vault_ref(self.resource_group_name, self.vault_name))
        emit_backup_asset_event(
            self, context, self.hook, job, resource_group_name=self.resource_group_name, vault_name=self.vault_name
        )
        return PokeReturnValue(is_done=True, xcom_value=summary)

    def _throttled(self, exc: AzureBackupThrottledError) -> bool:
        """Not done: come back when the service said (reschedule mode frees the slot until then)."""
        wait = max(self._poke_seconds(), exc.retry_after or 0.0)
        self.log.warning("Azure throttled the job read (HTTP %s); poking again in %.0f s.", exc.http_status, wait)
        if self.mode == "reschedule" and wait > self._poke_seconds():
            raise AirflowRescheduleException(datetime.now(timezone.utc) + timedelta(seconds=wait))
        return False

    def _poke_seconds(self) -> float:
        interval = self.poke_interval
        return interval.total_seconds() if isinstance(interval, timedelta) else float(interval)

    def execute(self, context: Context) -> Any:
        if self.deferrable:
            return self._execute_deferrable(context)
        try:
            return super().execute(context)
        except AirflowSensorTimeout:
            if self.cancel_on_timeout:
                self._cancel_quietly("sensor timed out")
            raise
        except AirflowSkipException as exc:
            # With soft_fail the base class turns a timeout into a skip ("Sensor has timed out; ...").
            if self.cancel_on_timeout and "timed out" in str(exc):
                self._cancel_quietly("sensor timed out")
            raise

    def _execute_deferrable(self, context: Context) -> Any:
        result = self.poke(context)  # a cheap check first: no deferral for a job that already finished
        if isinstance(result, PokeReturnValue) and result.is_done:
            return result.xcom_value
        defer_job_wait(
            self,
            job_id=self._checked_job_id(),
            timeout=self.timeout,
            poll_interval=self.poke_interval,
            cancel=self.cancel_on_timeout,
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger with its event: the summary, or an exception naming what happened."""
        try:
            summary = protocol.resolve_job_event(
                event, job_id=self._checked_job_id(), fail_on_warnings=self.fail_on_warnings
            )
        except protocol.AzureBackupTimeoutError as exc:
            raise AirflowSensorTimeout(str(exc)) from exc
        push_job_xcom(
            self.hook, context, summary["job_id"], self.hook.vault_ref(self.resource_group_name, self.vault_name)
        )
        emit_backup_asset_event(
            self, context, self.hook, summary, resource_group_name=self.resource_group_name, vault_name=self.vault_name
        )
        return summary

    def _cancel_quietly(self, reason: str) -> None:
        self.hook.cancel_job_quietly(
            self._checked_job_id(), reason, resource_group_name=self.resource_group_name, vault_name=self.vault_name
        )
