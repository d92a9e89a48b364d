"""Wait for many backup jobs of one vault with one jobs listing per poke (reschedule mode)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue

from airflow_backup_provider import protocol
from airflow_backup_provider.core import watching
from airflow_backup_provider.exceptions import (
    AzureBackupConfigError,
    AzureBackupError,
    AzureBackupJobFailedError,
    AzureBackupNotFoundError,
    AzureBackupThrottledError,
)
from airflow_backup_provider.hooks.backup import AzureBackupHook
from airflow_backup_provider.protocol import BackupJob, RetryPolicy
from airflow_backup_provider.sensors.backup import RESCHEDULE_MAX_THROTTLE_WAIT
from airflow_backup_provider.version_compat import AirflowRescheduleException

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class BackupJobsSensor(BaseSensorOperator):
    """
    Wait until every job of ``job_ids`` (one vault) is terminal, with one jobs listing per poke.

    Each poke lists the vault's jobs started in the last ``lookback`` (paged: one request per 200 jobs) and reads
    on its own only a job the listing does not show (too old for the window, or not visible yet). When every job is
    terminal the sensor returns ``{job_id: summary}`` for all of them, or fails with
    :class:`~airflow_backup_provider.exceptions.AzureBackupJobFailedError` listing *every* job that ended Failed /
    Cancelled / Invalid (and ``CompletedWithWarnings`` with ``fail_on_warnings``). It does not fail at the first
    failed job: the others are still waited for, so the failure names them all.

    Compared with mapped ``BackupJobSensor.partial(...).expand(job_id=...)`` (still supported), N jobs cost one
    sign-in and one listing per poke instead of N sign-ins and N GETs. The summaries come from the listing bodies.

    :param job_ids: The job ids (a list, or a templated XCom pull of one). (templated)
    :param vault_name: Vault; default: the connection's. (templated)
    :param resource_group_name: Resource group; default: the connection's. (templated)
    :param azure_backup_conn_id: The Azure Backup connection id.
    :param fail_on_warnings: Count ``CompletedWithWarnings`` as failed.
    :param lookback: How far back the listing window reaches (the jobs' start times must be inside it, else each
        such job costs its own GET per poke).
    :param hook_params: Extra keyword arguments for :class:`AzureBackupHook`.
    """

    template_fields: Sequence[str] = ("job_ids", "vault_name", "resource_group_name", "azure_backup_conn_id")
    ui_color = "#50a0e0"

    def __init__(
        self,
        *,
        job_ids: Sequence[str] | str,
        vault_name: str | None = None,
        resource_group_name: str | None = None,
        azure_backup_conn_id: str = AzureBackupHook.default_conn_name,
        mode: str = "reschedule",
        poke_interval: float | timedelta = 60,
        fail_on_warnings: bool = False,
        lookback: timedelta = timedelta(days=2),
        hook_params: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(mode=mode, poke_interval=poke_interval, **kwargs)
        self.job_ids = job_ids
        self.vault_name = vault_name
        self.resource_group_name = resource_group_name
        self.azure_backup_conn_id = azure_backup_conn_id
        self.fail_on_warnings = fail_on_warnings
        if not isinstance(lookback, timedelta) or lookback <= timedelta(0):
            raise AzureBackupConfigError("lookback", lookback, "must be a positive timedelta")
        self.lookback = lookback
        self.hook_params = dict(hook_params or {})

    @cached_property
    def hook(self) -> AzureBackupHook:
        params = dict(self.hook_params)
        if self.mode == "reschedule":
            policy = params.get("retry_policy") or RetryPolicy()
            if isinstance(policy, Mapping):
                policy = RetryPolicy(**policy)
            params["retry_policy"] = dataclasses.replace(policy, max_throttle_wait=RESCHEDULE_MAX_THROTTLE_WAIT)
        return AzureBackupHook(self.azure_backup_conn_id, **params)

    def _checked_job_ids(self) -> list[str]:
        ids = self.job_ids
        if isinstance(ids, str):
            ids = [ids]
        if not isinstance(ids, (list, tuple)) or not ids:
            raise AzureBackupConfigError("job_ids", ids, "must be a non-empty list of job ids")
        out: list[str] = []
        for job_id in ids:
            if not isinstance(job_id, str) or not job_id.strip() or job_id.strip() == "None":
                raise AzureBackupConfigError("job_ids", job_id, "contains an empty job id")
            job_id = protocol.require_name("job_ids", job_id.strip())
            if job_id not in out:
                out.append(job_id)
        return out

    def poke(self, context: Context) -> bool | PokeReturnValue:
        job_ids = self._checked_job_ids()
        hook = self.hook
        seen: dict[str, BackupJob] = {}
        try:
            listed = hook.list_jobs(
                start_time=datetime.now(timezone.utc) - self.lookback - watching.START_SKEW,
                end_time=datetime.now(timezone.utc) + timedelta(days=1),
                resource_group_name=self.resource_group_name,
                vault_name=self.vault_name,
            )
            wanted = {j.lower() for j in job_ids}
            seen = {job.job_id.lower(): job for job in listed if job.job_id.lower() in wanted}
            for job_id in job_ids:  # a job the listing does not show: its own GET
                if job_id.lower() not in seen:
                    job = self._read_one(job_id)
                    if job is not None:
                        seen[job_id.lower()] = job
        except AzureBackupThrottledError as exc:
            return self._throttled(exc)
        verdict = watching.judge_jobs(job_ids, seen, fail_on_warnings=self.fail_on_warnings)
        self.log.info(
            "%d of %d backup jobs finished; waiting for %s",
            len(verdict.summaries),
            len(job_ids),
            ", ".join(verdict.pending) or "none",
        )
        if not verdict.done:
            return False
        if verdict.failed:
            first_id = verdict.failed[0][0]
            codes = tuple(e.code for j, _ in verdict.failed for e in seen[j.lower()].errors)
            raise AzureBackupJobFailedError(
                verdict.describe_failures(), job_id=first_id, status=seen[first_id.lower()].status, error_codes=codes
            )
        return PokeReturnValue(is_done=True, xcom_value=verdict.summaries)

    def _read_one(self, job_id: str) -> BackupJob | None:
        try:
            return self.hook.get_job(job_id, resource_group_name=self.resource_group_name, vault_name=self.vault_name)
        except AzureBackupNotFoundError as exc:
            self.hook.explain_job_not_found(
                job_id, exc, resource_group_name=self.resource_group_name, vault_name=self.vault_name
            )
            self.log.warning("Backup job %s not found yet (its vault exists); will poke again.", job_id)
            return None

    def _throttled(self, exc: AzureBackupError) -> bool:
        retry_after = getattr(exc, "retry_after", None) or 0.0
        interval = self.poke_interval
        poke = interval.total_seconds() if isinstance(interval, timedelta) else float(interval)
        wait = max(poke, retry_after)
        self.log.warning("Azure throttled the jobs listing; poking again in %.0f s.", wait)
        if self.mode == "reschedule" and wait > poke:
            raise AirflowRescheduleException(datetime.now(timezone.utc) + timedelta(seconds=wait))
        return False
