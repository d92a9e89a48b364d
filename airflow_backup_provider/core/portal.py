"""Azure portal deep links (not wire protocol: a link shown to people in the Airflow UI and logs)."""

from __future__ import annotations

import logging

from airflow_backup_provider.core.api import (
    VaultRef,
    _segment,
)
from airflow_backup_provider.core.settings import (
    CloudEnvironment,
)

log = logging.getLogger(__name__)


def portal_job_url(cloud: CloudEnvironment, tenant_id: str | None, vault: VaultRef, job_id: str) -> str:
    """Portal deep link to a job, using the generic ``#@{tenant}/resource{armId}`` pattern (no documented format)."""
    tenant = f"@{tenant_id}" if tenant_id else ""
    return f"{cloud.portal}/#{tenant}/resource{vault.path}/backupJobs/{_segment(job_id)}/overview"
