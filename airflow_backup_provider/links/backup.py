"""Extra link from a task to its backup job in the Azure portal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import TaskInstanceKey

JOB_URL_XCOM_KEY = "job_url"


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
