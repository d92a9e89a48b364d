"""Notifier that reports a backup job summary: to the task log, and to any callable you give it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from airflow.providers.common.compat.sdk import BaseNotifier


def format_backup_summary(summary: Mapping[str, Any] | None, *, title: str = "Azure Backup", extra: str = "") -> str:
    """Render a job summary (as returned by the sensor) as a few readable lines for chat or e-mail."""
    if not summary:
        return f"{title}: no backup job summary available. {extra}".strip()
    lines = [
        f"{title}: {summary.get('entity_friendly_name') or '?'} — {summary.get('operation') or 'Backup'} "
        f"{summary.get('status')}",
        f"job {summary.get('job_id')}",
        f"started {summary.get('start_time') or '?'}, ended {summary.get('end_time') or '?'}"
        f" ({summary.get('duration') or '?'})",
    ]
    if summary.get("backup_size"):
        lines.append(f"size {summary['backup_size']}")
    if summary.get("errors"):
        lines.append("errors: " + "; ".join(summary["errors"]))
    if extra:
        lines.append(extra)
    return "\n".join(lines)


class BackupSummaryNotifier(BaseNotifier):
    """
    Send a readable backup summary. The default sink is the task log; pass ``sink`` (any ``str -> None`` callable)
    or swap this notifier for ``SlackNotifier`` / ``MsTeams`` / ``SmtpNotifier`` with the same message.

    :param summary_task_id: Task whose return value is the job summary (the sensor). (templated)
    :param title: First words of the message. (templated)
    :param sink: Callable that receives the message.
    """

    template_fields = ("summary_task_id", "title")

    def __init__(
        self,
        *,
        summary_task_id: str | None = "wait_for_backup",
        title: str = "Azure Backup",
        sink: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__()
        self.summary_task_id = summary_task_id
        self.title = title
        self.sink = sink
        self.sent: list[str] = []

    def notify(self, context: Any) -> None:
        summary = None
        if self.summary_task_id:
            summary = context["ti"].xcom_pull(task_ids=self.summary_task_id)
        state = getattr(context.get("ti"), "state", None)
        exception = context.get("exception")
        extra = f"task {getattr(context.get('ti'), 'task_id', '?')} state {state}" if state else ""
        if exception:
            extra += f" error: {exception}"
        message = format_backup_summary(summary, title=self.title, extra=extra.strip())
        self.log.info("%s", message)
        self.sent.append(message)
        if self.sink is not None:
            self.sink(message)
