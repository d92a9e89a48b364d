"""Imports that differ between Airflow / common-compat versions, resolved once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import ResumableJobMixin
else:
    try:
        from airflow.providers.common.compat.sdk import ResumableJobMixin
    except ImportError:  # common-compat < 1.23 (the newest on Python 3.10)
        try:
            from airflow.sdk import ResumableJobMixin  # Airflow 3.3+
        except ImportError:

            class ResumableJobMixin:
                """Airflow < 3.3 stand-in: no task state store to resume from, so every try submits (as compat 1.23)."""

                external_id_key: str = "remote_job_id"

                def __init__(self, *, durable: bool = False, **kwargs: Any) -> None:
                    super().__init__(**kwargs)
                    self.durable = False

                def execute_resumable(self, context: Any) -> Any:
                    external_id = self.submit_job(context)
                    self.poll_until_complete(external_id, context)
                    return self.get_job_result(external_id, context)


try:  # not in common-compat's sdk module
    from airflow.sdk.exceptions import AirflowRescheduleException
except ImportError:  # Airflow 2
    from airflow.exceptions import AirflowRescheduleException  # type: ignore[no-redef,attr-defined,unused-ignore]

if TYPE_CHECKING:
    from airflow.sdk.log import mask_secret
else:
    try:
        from airflow.providers.common.compat.sdk import mask_secret
    except ImportError:  # common-compat < 1.23 (the newest on Python 3.10) has no mask_secret
        try:
            from airflow.sdk.log import mask_secret  # Airflow 3
        except ImportError:
            from airflow.utils.log.secrets_masker import mask_secret  # Airflow 2

__all__ = ["AirflowRescheduleException", "ResumableJobMixin", "mask_secret"]
