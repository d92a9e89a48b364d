"""Renderers and BackupReportNotifier: sink, log, and a webhook served by a local HTTPS sink started here."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from airflow_backup_provider.emulator import tls
from airflow_backup_provider.exceptions import AzureBackupConfigError, AzureBackupError
from airflow_backup_provider.notifications.backup import (
    BackupReportNotifier,
    render_health_report,
    render_job_summary,
    render_report,
    render_verification,
    scrub_urls,
    webhook_payload,
)
from tests.conftest import RecordingTI

SECRET_PATH = "/webhookb2/00000000-aaaa/IncomingWebhook/s3cr3t-t0k3n-value"
MESSAGE_KEYS = {"title", "text", "markdown", "facts", "ok"}

VERIFICATION = {
    "ok": False,
    "job_id": "job-1",
    "item": "vm-app-01",
    "status": "Failed",
    "recovery_point_id": None,
    "recovery_point_time": None,
    "checks": [
        {"name": "job_succeeded", "ok": False, "detail": "job job-1 ended Failed: error 400093"},
        {"name": "recovery_point_exists", "ok": False, "detail": "no recovery point"},
        {"name": "item_healthy", "ok": True, "detail": "vm-app-01: Protected"},
    ],
}
HEALTH = {
    "checked_at": "2026-12-01T06:00:00+00:00",
    "vaults": ["rg/v1", "rg/v2"],
    "items": 3,
    "healthy": [{"vault": "rg/v1", "item": "a", "reason": "ok"}],
    "stale": [{"vault": "rg/v1", "item": "b", "reason": "never backed up"}],
    "failed": [],
    "protection_stopped": [{"vault": "rg/v1", "item": "c", "reason": "protectionState is ProtectionStopped"}],
    "protection_error": [],
    "warnings": [],
    "vault_errors": [{"vault": "rg/v2", "error": "AzureBackupNotFoundError: HTTP 404"}],
}
SUMMARY = {
    "job_id": "job-2",
    "status": "Completed",
    "operation": "Backup",
    "entity_friendly_name": "vm-app-01",
    "start_time": "2026-12-01T05:00:00+00:00",
    "end_time": "2026-12-01T05:20:00+00:00",
    "duration": "PT20M",
    "backup_size": "1024 MB",
    "errors": [],
}


# -- renderers -----------------------------------------------------------------------------------------------------


def test_render_verification_lists_every_check() -> None:
    message = render_verification(VERIFICATION)
    assert set(message) == MESSAGE_KEYS and message["ok"] is False
    assert message["title"] == "Azure Backup verification: vm-app-01 FAILED (2 of 3 checks)"
    assert "FAIL job_succeeded: job job-1 ended Failed" in message["text"]
    assert "PASS item_healthy" in message["text"]
    assert ["Job", "job-1"] in message["facts"] and ["Job status", "Failed"] in message["facts"]
    assert message["markdown"].startswith("**Azure Backup verification: vm-app-01 FAILED")


def test_render_health_report_names_problems_and_vault_errors() -> None:
    message = render_health_report(HEALTH)
    assert message["ok"] is False
    assert message["title"] == "Azure Backup nightly check: 2 unhealthy item(s), 1 unreadable vault(s)"
    assert "STALE rg/v1 b: never backed up" in message["text"]
    assert "PROTECTION_STOPPED rg/v1 c" in message["text"]
    assert "VAULT ERROR rg/v2: AzureBackupNotFoundError" in message["text"]
    assert ["Stale", "1"] in message["facts"] and ["Unreadable vaults", "1"] in message["facts"]
    healthy = render_health_report({**HEALTH, "stale": [], "protection_stopped": [], "vault_errors": []})
    assert healthy["ok"] is True and healthy["title"].endswith("all healthy")


def test_render_job_summary_and_dispatch() -> None:
    message = render_job_summary(SUMMARY)
    assert message["ok"] is True and message["title"] == "Azure Backup: Backup of vm-app-01 Completed"
    assert ["Size", "1024 MB"] in message["facts"]
    assert render_job_summary({**SUMMARY, "status": "Failed"})["ok"] is False
    assert render_report(VERIFICATION)["title"].startswith("Azure Backup verification")
    assert render_report(HEALTH)["title"].startswith("Azure Backup nightly check")
    assert render_report(SUMMARY, title="Drill")["title"] == "Drill: Backup of vm-app-01 Completed"
    json.dumps([render_report(r) for r in (VERIFICATION, HEALTH, SUMMARY)])


def test_payload_is_slack_and_teams_shaped() -> None:
    payload = webhook_payload(render_verification(VERIFICATION))
    assert payload["text"].startswith("**Azure Backup verification")  # Slack and Teams read "text"
    assert payload["@type"] == "MessageCard" and payload["themeColor"] == "E01E5A"
    assert {"name": "Item", "value": "vm-app-01"} in payload["sections"][0]["facts"]


def test_scrub_urls() -> None:
    text = f"HTTPSConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: {SECRET_PATH} (https://x.y{SECRET_PATH})"
    scrubbed = scrub_urls(text, SECRET_PATH)
    assert "s3cr3t" not in scrubbed and "<webhook url>" in scrubbed


# -- notifier: sink and log -----------------------------------------------------------------------------------------


def test_failed_verification_is_read_from_its_xcom_key() -> None:
    ti = RecordingTI("verify")
    ti.xcom["verification"] = VERIFICATION  # no return_value: the task raised
    received: list[dict[str, Any]] = []
    notifier = BackupReportNotifier("verify", sink=received.append)
    notifier.notify({"ti": ti})
    assert received == [render_verification(VERIFICATION)] == notifier.sent


def test_no_report_still_names_the_job_id(task_logs: Any) -> None:
    ti = RecordingTI("wait_for_backup")
    ti.xcom["job_id"] = "job-77"
    ti.state = "failed"  # type: ignore[assignment]
    notifier = BackupReportNotifier("wait_for_backup")
    notifier.notify({"ti": ti, "exception": RuntimeError("Azure Backup job job-77 ended Failed")})
    message = notifier.sent[0]
    assert message["title"] == "Azure Backup: job job-77 failed" and message["ok"] is False
    assert "RuntimeError: Azure Backup job job-77 ended Failed" in message["text"]
    assert "no summary available" not in message["text"]
    assert "Azure Backup: job job-77 failed" in task_logs()  # no sink: the task log


def test_report_key_selects_the_report() -> None:
    ti = RecordingTI("health")
    ti.xcom["health_report"] = HEALTH
    ti.xcom["return_value"] = SUMMARY
    received: list[dict[str, Any]] = []
    BackupReportNotifier("health", report_key="health_report", sink=received.append).notify({"ti": ti})
    assert received[0]["title"].startswith("Azure Backup nightly check")


def test_constructor_checks() -> None:
    with pytest.raises(AzureBackupConfigError, match=r"^report_task_id="):
        BackupReportNotifier("")
    with pytest.raises(AzureBackupConfigError, match=r"^timeout=0"):
        BackupReportNotifier("t", timeout=0)
    assert set(BackupReportNotifier.template_fields) >= {"report_task_id", "report_key", "webhook_conn_id"}


# -- notifier: webhook --------------------------------------------------------------------------------------------


class Sink:
    """An HTTPS server on 127.0.0.1 that records POSTed JSON and answers with scripted status codes."""

    def __init__(self, credentials: tls.ServerCredentials) -> None:
        self.posts: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.statuses: list[int] = []
        self.delay = 0.0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.paths.append(self.path)
                sink.posts.append(json.loads(body))
                if sink.delay:
                    time.sleep(sink.delay)
                status = sink.statuses.pop(0) if sink.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "1")
                self.end_headers()
                self.wfile.write(b"1")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.handle_error = lambda *args: None  # type: ignore[method-assign]  # the timeout test hangs up
        context = tls.server_ssl_context(credentials)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.server.server_address[1]}{SECRET_PATH}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def sink_credentials() -> tls.ServerCredentials:
    return tls.generate_credentials()


@pytest.fixture
def sink(sink_credentials: tls.ServerCredentials, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sink]:
    ca = tls.write_ca_file(sink_credentials, tmp_path / "sink-ca.pem")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)  # TLS verification stays on: trust the sink's own CA
    server = Sink(sink_credentials)
    monkeypatch.setenv("AIRFLOW_CONN_TEAMS_WEBHOOK", json.dumps({"conn_type": "http", "host": server.url}))
    monkeypatch.setattr("airflow_backup_provider.notifications.backup.WEBHOOK_RETRY_DELAY", 0.0)
    yield server
    server.close()


def verification_context() -> dict[str, Any]:
    ti = RecordingTI("verify")
    ti.xcom["verification"] = VERIFICATION
    return {"ti": ti}


def test_webhook_receives_the_payload(sink: Sink, task_logs: Any) -> None:
    notifier = BackupReportNotifier("verify", webhook_conn_id="teams_webhook")
    notifier.notify(verification_context())
    assert sink.paths == [SECRET_PATH]
    payload = sink.posts[0]
    assert payload == webhook_payload(render_verification(VERIFICATION))
    assert "vm-app-01" in payload["title"] and "FAILED" in payload["title"]
    assert {"name": "Job status", "value": "Failed"} in payload["sections"][0]["facts"]
    logs = task_logs()
    assert "Report posted to webhook connection teams_webhook (HTTP 200)" in logs
    assert "s3cr3t" not in logs


def test_one_retry_on_5xx(sink: Sink) -> None:
    sink.statuses = [503]
    assert (
        BackupReportNotifier("verify", webhook_conn_id="teams_webhook").post_webhook(render_verification(VERIFICATION))
        == 200
    )
    assert len(sink.posts) == 2


def test_second_5xx_fails_without_the_url(sink: Sink, task_logs: Any) -> None:
    sink.statuses = [500, 502, 200]
    with pytest.raises(AzureBackupError) as info:
        BackupReportNotifier("verify", webhook_conn_id="teams_webhook").notify(verification_context())
    assert len(sink.posts) == 2  # exactly one retry
    assert str(info.value) == "Webhook connection 'teams_webhook' answered HTTP 502 twice"
    assert "s3cr3t" not in task_logs()


def test_4xx_is_not_retried(sink: Sink) -> None:
    sink.statuses = [404]
    with pytest.raises(AzureBackupError, match=r"answered HTTP 404$"):
        BackupReportNotifier("verify", webhook_conn_id="teams_webhook").notify(verification_context())
    assert len(sink.posts) == 1


def test_timeout_error_has_no_url(sink: Sink, task_logs: Any) -> None:
    sink.delay = 1.0
    notifier = BackupReportNotifier("verify", webhook_conn_id="teams_webhook", timeout=0.2)
    with pytest.raises(AzureBackupError) as info:
        notifier.notify(verification_context())
    text = str(info.value)
    assert "ReadTimeout" in text and "s3cr3t" not in text and "webhookb2" not in text
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert "s3cr3t" not in task_logs()


def test_refused_connection_error_has_no_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"https://127.0.0.1:{port}{SECRET_PATH}"
    monkeypatch.setenv("AIRFLOW_CONN_TEAMS_WEBHOOK", json.dumps({"conn_type": "http", "host": url}))
    with pytest.raises(AzureBackupError) as info:
        BackupReportNotifier("verify", webhook_conn_id="teams_webhook").notify(verification_context())
    assert "ConnectionError" in str(info.value) and "s3cr3t" not in str(info.value)


def test_connection_without_host_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_EMPTY_WEBHOOK", json.dumps({"conn_type": "http"}))
    with pytest.raises(AzureBackupConfigError, match=r"^webhook_conn_id='empty_webhook'"):
        BackupReportNotifier("verify", webhook_conn_id="empty_webhook").notify(verification_context())
