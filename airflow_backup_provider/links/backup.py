"""Extra link from a task to its backup job in the Azure portal, and the XComs it reads (pushed by the task)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

from airflow_backup_provider.core import VaultRef, portal_job_url

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, TaskInstanceKey

    from airflow_backup_provider.hooks.backup import AzureBackupHook

JOB_ID_XCOM_KEY = "job_id"
JOB_URL_XCOM_KEY = "job_url"


def push_job_xcom(hook: AzureBackupHook, context: Context, job_id: str, vault: VaultRef) -> None:
    """Push the job id and its portal URL (read by :class:`AzureBackupJobLink`) as soon as the id is known."""
    ti = context["ti"]
    ti.xcom_push(key=JOB_ID_XCOM_KEY, value=job_id)
    ti.xcom_push(
        key=JOB_URL_XCOM_KEY, value=portal_job_url(hook.settings.cloud, hook.settings.tenant_id, vault, job_id)
    )


class AzureBackupJobLink(BaseOperatorLink):
    """
    "Azure Backup job": the job in the portal of the connection's cloud.

    The task computes the URL on the worker when it learns the job id and pushes it under XCom key ``job_url``;
    the link only reads it back.
    """

    name = "Azure Backup job"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        url = XCom.get_value(key=JOB_URL_XCOM_KEY, ti_key=ti_key)
        return url if isinstance(url, str) else ""
