"""Render backup reports once, send them anywhere: pure renderers and :class:`BackupReportNotifier`.

The renderers (:func:`render_job_summary`, :func:`render_verification`, :func:`render_health_report`) turn a report
of this provider's operators into ``{"title", "text", "markdown", "facts": [[label, value], ...], "ok"}`` — plain
data that any channel can use: the webhook of :class:`BackupReportNotifier`, or the text / subject of the
ecosystem's ``SlackNotifier``, ``SmtpNotifier`` or ``AppriseNotifier``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests
from airflow.providers.common.compat.sdk import BaseHook, BaseNotifier

from airflow_backup_provider.exceptions import AzureBackupConfigError, AzureBackupError
from airflow_backup_provider.version_compat import mask_secret

Message = dict[str, Any]
_REPORT_KEYS = ("return_value", "verification", "health_report")
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>)]+")
# urllib3 names the path alone: "Max retries exceeded with url: /webhookb2/... (Caused by ...)"
_URLLIB3_PATH = re.compile(r"(with url: )\S+")
WEBHOOK_RETRY_DELAY = 1.0


def _message(title: str, lines: Sequence[str], facts: Sequence[tuple[str, Any]], ok: bool) -> Message:
    shown = [[label, "" if value is None else str(value)] for label, value in facts if value not in (None, "")]
    text = "\n".join([title, *lines])
    markdown = "\n".join(
        [f"**{title}**", *(f"- {line}" for line in lines), *(f"- **{label}**: {value}" for label, value in shown)]
    )
    return {"title": title, "text": text, "markdown": markdown, "facts": shown, "ok": ok}


def render_job_summary(summary: Mapping[str, Any], *, title: str = "Azure Backup") -> Message:
    """A job summary (the sensor's return value, ``BackupJob.summary()``)."""
    status = str(summary.get("status") or "?")
    ok = status in ("Completed", "CompletedWithWarnings")
    item = summary.get("entity_friendly_name") or summary.get("item") or "?"
    operation = summary.get("operation") or "Backup"
    lines = [f"{operation} of {item}: {status}"]
    if summary.get("errors"):
        lines.append("errors: " + "; ".join(str(e) for e in summary["errors"]))
    facts = [
        ("Item", item),
        ("Operation", operation),
        ("Status", status),
        ("Job", summary.get("job_id")),
        ("Started", summary.get("start_time")),
        ("Ended", summary.get("end_time")),
        ("Duration", summary.get("duration")),
        ("Size", summary.get("backup_size")),
    ]
    return _message(f"{title}: {operation} of {item} {status}", lines, facts, ok)


def render_verification(report: Mapping[str, Any], *, title: str = "Azure Backup verification") -> Message:
    """The report of :class:`~airflow_backup_provider.operators.verify.VerifyBackupOperator`."""
    ok = bool(report.get("ok"))
    item = report.get("item") or "?"
    checks = list(report.get("checks") or ())
    lines = [f"{'PASS' if c.get('ok') else 'FAIL'} {c.get('name')}: {c.get('detail')}" for c in checks]
    failed = [c for c in checks if not c.get("ok")]
    verdict = "passed" if ok else f"FAILED ({len(failed)} of {len(checks)} checks)"
    facts = [
        ("Item", item),
        ("Job", report.get("job_id")),
        ("Job status", report.get("status")),
        ("Recovery point", report.get("recovery_point_id")),
        ("Recovery point time", report.get("recovery_point_time")),
    ]
    return _message(f"{title}: {item} {verdict}", lines, facts, ok)


_HEALTH_CATEGORIES = ("failed", "stale", "protection_stopped", "protection_error")


def render_health_report(
    report: Mapping[str, Any], *, title: str = "Azure Backup nightly check", max_lines: int = 20
) -> Message:
    """The report of :class:`~airflow_backup_provider.operators.health.BackupHealthCheckOperator`."""
    errors = list(report.get("vault_errors") or ())
    problems = [(c, e) for c in _HEALTH_CATEGORIES for e in report.get(c) or ()]
    ok = not problems and not errors
    lines = [f"{c.upper()} {e.get('vault')} {e.get('item')}: {e.get('reason')}" for c, e in problems]
    lines += [f"VAULT ERROR {e.get('vault')}: {e.get('error')}" for e in errors]
    lines += [f"warning {e.get('vault')} {e.get('item')}: {e.get('reason')}" for e in report.get("warnings") or ()]
    if len(lines) > max_lines:
        lines = [*lines[:max_lines], f"... and {len(lines) - max_lines} more"]
    if ok:
        lines.insert(0, "every item backed up recently; no failed backups")
    counts = {c: len(report.get(c) or ()) for c in ("healthy", *_HEALTH_CATEGORIES, "warnings")}
    facts = [
        ("Checked at", report.get("checked_at")),
        ("Vaults", ", ".join(report.get("vaults") or ())),
        ("Items", report.get("items")),
        *((label.replace("_", " ").capitalize(), str(n)) for label, n in counts.items()),
        ("Unreadable vaults", str(len(errors)) if errors else None),
    ]
    verdict = (
        "all healthy"
        if ok
        else f"{len(problems)} unhealthy item(s)" + (f", {len(errors)} unreadable vault(s)" if errors else "")
    )
    return _message(f"{title}: {verdict}", lines, facts, ok)


def render_report(report: Mapping[str, Any], *, title: str | None = None) -> Message:
    """Pick the renderer by the report's shape (verification, health report or job summary)."""
    kwargs: dict[str, Any] = {"title": title} if title else {}
    if "checks" in report:
        return render_verification(report, **kwargs)
    if "healthy" in report and "vaults" in report:
        return render_health_report(report, **kwargs)
    return render_job_summary(report, **kwargs)


def render_missing_report(
    *, job_id: str | None, task: str, state: str | None, error: str | None, title: str = "Azure Backup"
) -> Message:
    """What to say when the report task left no report (it failed before producing one)."""
    subject = f"job {job_id}" if job_id else f"task {task}"
    lines = [f"{task} ended {state or 'without a report'}" + (f": {error}" if error else "")]
    facts = [("Job", job_id), ("Task", task), ("State", state)]
    return _message(f"{title}: {subject} {state or 'unknown'}", lines, facts, False)


def webhook_payload(message: Message) -> dict[str, Any]:
    """A Slack / Teams incoming-webhook payload: ``text`` (both) plus a MessageCard (Teams connectors)."""
    return {
        "text": message["markdown"],
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": message["title"],
        "title": message["title"],
        "themeColor": "2EB67D" if message["ok"] else "E01E5A",
        "sections": [{"facts": [{"name": label, "value": value} for label, value in message["facts"]]}],
    }


def scrub_urls(text: str, *secrets: str) -> str:
    """Remove URLs (and the given secrets) from an error text: a webhook URL is a credential."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 8:  # never a lone "/"
            text = text.replace(secret, "<webhook url>")
    return _URLLIB3_PATH.sub(r"\1<url>", _URL.sub("<url>", text))


class BackupReportNotifier(BaseNotifier):
    """
    Report a backup job summary, a verification report or a health report — to a webhook, a callable or the log.

    Use it as ``on_success_callback`` / ``on_failure_callback`` (of a task or a DAG), or call ``notify(context)``
    in a task. The report is read from XCom of ``report_task_id`` (key ``report_key``; default: ``return_value``,
    then ``verification``, then ``health_report``, so a failed verification still reports its checks). When the task
    left no report, the message names the job id (XCom key ``job_id``) and the failure.

    With ``webhook_conn_id`` the message is POSTed as JSON (Slack / Teams incoming-webhook style) to the URL of an
    Airflow ``http`` connection whose ``host`` holds the full ``https://...`` URL (as the http provider accepts it);
    the request has a timeout and is retried exactly once on a 5xx answer. The URL is a credential: it is masked in
    task logs and never appears in this notifier's logs or exceptions. Otherwise the rendered message goes to
    ``sink`` (``message -> None``) or, without one, to the task log.

    :param report_task_id: Task whose XCom holds the report. (templated)
    :param report_key: XCom key of the report. (templated)
    :param webhook_conn_id: An ``http`` connection with the webhook URL. (templated)
    :param sink: Callable that receives the rendered message dict.
    :param title: First words of the message; default: per report type. (templated)
    :param timeout: Seconds for each webhook request.
    """

    template_fields = ("report_task_id", "report_key", "webhook_conn_id", "title")

    def __init__(
        self,
        report_task_id: str,
        report_key: str | None = None,
        webhook_conn_id: str | None = None,
        sink: Callable[[Message], None] | None = None,
        title: str | None = None,
        *,
        timeout: float = 10.0,
    ) -> None:
        super().__init__()
        if not report_task_id:
            raise AzureBackupConfigError("report_task_id", report_task_id, "is required")
        if timeout <= 0:
            raise AzureBackupConfigError("timeout", timeout, "must be > 0")
        self.report_task_id = report_task_id
        self.report_key = report_key
        self.webhook_conn_id = webhook_conn_id
        self.sink = sink
        self.title = title
        self.timeout = timeout
        self.sent: list[Message] = []
        # One instance serves every task of default_args; rendering is in place, so keep the templates.
        self._templates = {name: getattr(self, name) for name in self.template_fields}

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        for name, template in self._templates.items():
            setattr(self, name, template)
        super().render_template_fields(context, jinja_env)

    # -- rendering ----------------------------------------------------------------------------------------------------
    def _pull(self, ti: Any, key: str) -> Any:
        try:
            return ti.xcom_pull(task_ids=self.report_task_id, key=key)
        except Exception as exc:  # a callback must still report something
            self.log.warning("Could not read XCom %s of %s: %s", key, self.report_task_id, exc)
            return None

    def render(self, context: Mapping[str, Any]) -> Message:
        """The message for this context (the report of ``report_task_id``, or what is known without one)."""
        ti = context.get("ti")
        report = None
        if ti is not None:
            for key in (self.report_key,) if self.report_key else _REPORT_KEYS:
                value = self._pull(ti, key)
                if isinstance(value, Mapping):
                    report = value
                    break
        if report is not None:
            return render_report(report, title=self.title)
        job_id = self._pull(ti, "job_id") if ti is not None else None
        if not job_id and ti is not None:
            try:
                job_id = ti.xcom_pull(task_ids=ti.task_id, key="job_id")
            except Exception:
                job_id = None
        if not job_id:  # e.g. a sensor that failed: its (rendered) job_id argument
            task_job_id = getattr(context.get("task"), "job_id", None)
            job_id = task_job_id if isinstance(task_job_id, str) and "{{" not in task_job_id else None
        exception = context.get("exception")
        state = getattr(ti, "state", None)
        state = getattr(state, "value", state)  # TaskInstanceState.FAILED -> "failed"
        return render_missing_report(
            job_id=str(job_id) if job_id else None,
            task=getattr(ti, "task_id", None) or self.report_task_id,
            state=str(state) if state is not None else ("failed" if exception else None),
            error=f"{type(exception).__name__}: {exception}" if exception else None,
            **({"title": self.title} if self.title else {}),
        )

    def notify(self, context: Any) -> None:
        message = self.render(context)
        self.sent.append(message)
        self.log.info("%s", message["text"])
        if self.webhook_conn_id:
            self.post_webhook(message)
        elif self.sink is not None:
            self.sink(message)

    # -- webhook ------------------------------------------------------------------------------------------------------
    def _webhook_url(self) -> str:
        assert self.webhook_conn_id
        conn = BaseHook.get_connection(self.webhook_conn_id)
        host = (conn.host or "").strip()
        if not host:
            raise AzureBackupConfigError(
                "webhook_conn_id", self.webhook_conn_id, "the connection's host must hold the webhook URL"
            )
        url = host if "://" in host else f"{conn.schema or 'https'}://{host}"
        if conn.port:
            url += f":{conn.port}"
        # The whole URL and its path (urllib3 debug logs print the path alone) are credentials.
        mask_secret(url)
        path = urlsplit(url).path
        if len(path) > 8:
            mask_secret(path)
        return url

    def post_webhook(self, message: Message) -> int:
        """POST the message; retry once on 5xx. Return the HTTP status.

        :raises AzureBackupError: on a transport error or a non-2xx answer, without the URL in the message.
        """
        url = self._webhook_url()
        payload = webhook_payload(message)
        status = 0
        for attempt in (1, 2):
            try:
                response = requests.post(url, json=payload, timeout=self.timeout, allow_redirects=False)
            except requests.exceptions.RequestException as exc:
                parts = urlsplit(url)
                detail = scrub_urls(f"{type(exc).__name__}: {exc}", url, parts.path, parts.query)
                raise AzureBackupError(
                    f"Posting the report to webhook connection {self.webhook_conn_id!r} failed: {detail}"
                ) from None
            status = response.status_code
            if status < 500 or attempt == 2:
                break
            self.log.warning("Webhook connection %s answered HTTP %s; retrying once.", self.webhook_conn_id, status)
            time.sleep(WEBHOOK_RETRY_DELAY)
        if not 200 <= status < 300:
            raise AzureBackupError(
                f"Webhook connection {self.webhook_conn_id!r} answered HTTP {status}"
                + (" twice" if status >= 500 else "")
            )
        self.log.info("Report posted to webhook connection %s (HTTP %s).", self.webhook_conn_id, status)
        return status


# -- the first notifier, kept for existing DAGs ------------------------------------------------------------------------


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
    Send a readable backup summary. The default sink is the task log; pass ``sink`` (any ``str -> None`` callable).
    :class:`BackupReportNotifier` supersedes it (verification and health reports, webhooks).

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
