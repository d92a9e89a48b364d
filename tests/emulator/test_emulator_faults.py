"""Every fault kind, observed with a real HTTP client."""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

import pytest
import requests

from airflow_backup_provider.emulator import FAULT_KINDS, FILE_SHARE_ITEM, VM_ITEM, Emulator, Fault

from .conftest import Arm


def test_fault_validation() -> None:
    assert set(FAULT_KINDS) >= {
        "throttle", "unavailable", "reset", "slow", "token_expiry", "job_not_found", "operation_in_progress",
        "foreign_async_host",
    }  # fmt: skip
    with pytest.raises(ValueError):
        Fault("meteor")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Fault("throttle", count=0)
    with pytest.raises(ValueError):
        Fault("throttle", path_regex="(")
    assert Fault.from_dict({"kind": "slow", "delay": 0.5}) == Fault("slow", delay=0.5)


def test_throttle_answers_429_then_disarms(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.add_fault(Fault("throttle", count=2, retry_after=7, method="POST", path_regex=r"/backup$"))
    jobs_before = len(azure_backup_emulator.jobs)
    assert arm.get("/backupJobs").status_code == 200  # GET does not match
    for _ in range(2):
        throttled = arm.trigger_backup(VM_ITEM)
        assert throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "7"
        assert throttled.json()["error"]["code"] == "TooManyRequests"
        assert throttled.headers["x-ms-ratelimit-remaining-subscription-writes"] == "0"
    assert len(azure_backup_emulator.jobs) == jobs_before  # throttled POSTs were not acted on
    assert arm.trigger_backup(VM_ITEM).status_code == 202
    assert azure_backup_emulator.faults == []


def test_unavailable_answers_503(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.add_fault(Fault("unavailable", retry_after=3, method="GET"))
    response = arm.get("/backupJobs")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "3"
    assert response.json()["error"]["code"] == "ServiceUnavailable"
    assert arm.get("/backupJobs").status_code == 200


def test_reset_drops_the_connection_before_acting(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.add_fault(Fault("reset", method="POST"))
    jobs_before = len(azure_backup_emulator.jobs)
    with pytest.raises(requests.exceptions.ConnectionError):
        arm.trigger_backup(VM_ITEM)
    assert len(azure_backup_emulator.jobs) == jobs_before
    assert azure_backup_emulator.requests[-1].status == 0
    assert arm.trigger_backup(VM_ITEM).status_code == 202  # new connection, fault disarmed


def test_reset_after_acts_then_drops_the_connection(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.add_fault(Fault("reset_after", method="POST"))
    jobs_before = len(azure_backup_emulator.jobs)
    with pytest.raises(requests.exceptions.ConnectionError):
        arm.trigger_backup(VM_ITEM)
    assert len(azure_backup_emulator.jobs) == jobs_before + 1  # the backup started all the same
    assert azure_backup_emulator.requests[-1].status == 0


def test_error_after_acts_then_answers_500(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.add_fault(Fault("error_after", method="POST"))
    jobs_before = len(azure_backup_emulator.jobs)
    response = arm.trigger_backup(VM_ITEM)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "InternalServerError"
    assert len(azure_backup_emulator.jobs) == jobs_before + 1


def _raw_exchange(emulator: Emulator, method: str, path: str, token: str, body: bytes = b"") -> tuple[bytes, bytes]:
    """One request over a raw TLS socket; returns (head, body bytes received until the server closed)."""
    url = urlsplit(emulator.vault_url + path + ("&" if "?" in path else "?") + "api-version=2026-10-01")
    context = ssl.create_default_context(cafile=emulator.ca_file)
    with (
        socket.create_connection((url.hostname, url.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=url.hostname) as tls,
    ):
        tls.sendall(
            f"{method} {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while True:
            try:
                chunk = tls.recv(65536)
            except ssl.SSLEOFError:  # closed without close_notify
                break
            if not chunk:
                break
            received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    return head, rest


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    raise AssertionError(f"no Content-Length in {head!r}")


def test_truncated_get_promises_more_body_than_it_sends(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.add_fault(Fault("truncated", method="GET", path_regex=r"/backupJobs$"))
    head, body = _raw_exchange(azure_backup_emulator, "GET", "/backupJobs", arm.token)
    assert head.startswith(b"HTTP/1.1 200 ")
    whole = arm.get("/backupJobs")  # the fault is spent: the same request answered whole
    assert whole.status_code == 200
    assert _content_length(head) == len(whole.content)
    assert 0 < len(body) < _content_length(head)
    assert whole.content.startswith(body)
    # A real client sees a broken body, not a response.
    azure_backup_emulator.add_fault(Fault("truncated", method="GET", path_regex=r"/backupJobs$"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        arm.get("/backupJobs")
    assert azure_backup_emulator.faults == []


def test_truncated_post_is_acted_on(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.add_fault(Fault("truncated", method="POST"))
    jobs_before = len(azure_backup_emulator.jobs)
    head, body = _raw_exchange(
        azure_backup_emulator,
        "POST",
        arm.item_path(VM_ITEM) + "/backup",
        arm.token,
        json.dumps({"properties": {"objectType": "IaasVMBackupRequest"}}).encode(),
    )
    assert head.startswith(b"HTTP/1.1 202 ")
    assert b"azure-asyncoperation:" in head.lower()
    assert len(body) < _content_length(head)  # the 202 has no body; at least one byte is promised
    assert len(azure_backup_emulator.jobs) == jobs_before + 1  # the backup started all the same
    azure_backup_emulator.add_fault(Fault("truncated", method="POST"))
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        arm.trigger_backup(FILE_SHARE_ITEM)  # another item: the VM's backup is still running
    assert len(azure_backup_emulator.jobs) == jobs_before + 2


def test_slow_delays_the_answer(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.add_fault(Fault("slow", delay=0.6, path_regex=r"/backupJobs$"))
    with pytest.raises(requests.exceptions.ReadTimeout):
        arm.get("/backupJobs", timeout=0.2)
    started = time.monotonic()
    assert arm.get("/backupJobs").status_code == 200
    assert time.monotonic() - started < 0.5


def test_slow_does_not_block_other_clients(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.add_fault(Fault("slow", delay=0.8, path_regex=r"/backupJobs$"))
    other = Arm(azure_backup_emulator)
    slow_result: list[int] = []
    thread = threading.Thread(target=lambda: slow_result.append(arm.get("/backupJobs").status_code))
    thread.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert other.get("").status_code == 200
    assert time.monotonic() - started < 0.4
    thread.join()
    assert slow_result == [200]


def test_token_expiry_expires_the_presented_token(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.add_fault(Fault("token_expiry", path_regex="backupJobs"))
    assert arm.get("", token="garbage").status_code == 401  # invalid tokens do not consume the fault
    assert arm.get("").status_code == 200  # path does not match
    expired = arm.get("/backupJobs")
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "ExpiredAuthenticationToken"
    assert expired.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
    # the token stays expired everywhere
    assert arm.get("").json()["error"]["code"] == "ExpiredAuthenticationToken"
    fresh = Arm(azure_backup_emulator)
    assert fresh.get("/backupJobs").status_code == 200


def test_job_not_found_for_new_jobs(arm: Arm, azure_backup_emulator: Emulator) -> None:
    seeded_job = azure_backup_emulator.jobs[0].job_id
    azure_backup_emulator.add_fault(Fault("job_not_found", count=2))
    assert arm.get(f"/backupJobs/{seeded_job}").status_code == 200  # jobs older than the fault are not covered
    for item in (VM_ITEM, FILE_SHARE_ITEM):
        job_id = arm.follow_operation(arm.trigger_backup(item))["properties"]["jobId"]
        for _ in range(2):
            missing = arm.get(f"/backupJobs/{job_id}")
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == "BMSUserErrorJobNotFound"
        assert arm.get(f"/backupJobs/{job_id}").status_code == 200
    azure_backup_emulator.clear_faults()


def test_job_not_found_with_path_regex_covers_existing_jobs(arm: Arm, azure_backup_emulator: Emulator) -> None:
    seeded_job = azure_backup_emulator.jobs[-1].job_id
    azure_backup_emulator.add_fault(Fault("job_not_found", count=1, path_regex=seeded_job))
    assert arm.get(f"/backupJobs/{seeded_job}").status_code == 404
    assert arm.get(f"/backupJobs/{seeded_job}").status_code == 200


def test_operation_in_progress_holds_the_operation(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.configure(operation_polls_in_progress=0)
    azure_backup_emulator.add_fault(Fault("operation_in_progress", polls=3))
    accepted = arm.trigger_backup(VM_ITEM)
    op_id = urlsplit(accepted.headers["Location"]).path.rsplit("/", 1)[1]
    assert arm.get(f"/backupOperations/{op_id}").json()["status"] == "InProgress"
    assert arm.get(accepted.headers["Location"]).status_code == 202
    assert arm.get(accepted.headers["Azure-AsyncOperation"]).json()["status"] == "InProgress"
    assert arm.get(f"/backupOperations/{op_id}").json()["status"] == "Succeeded"
    # disarmed: the next operation succeeds on its first poll
    second = arm.trigger_backup(FILE_SHARE_ITEM)
    assert arm.get(second.headers["Azure-AsyncOperation"]).json()["status"] == "Succeeded"


def test_operation_results_202_carries_location_and_retry_after(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.configure(operation_polls_in_progress=1, retry_after=5)
    accepted = arm.trigger_backup(VM_ITEM)
    assert accepted.headers["Retry-After"] == "5"
    pending = arm.get(accepted.headers["Location"])
    assert pending.status_code == 202
    assert pending.content == b""
    assert pending.headers["Retry-After"] == "5"
    assert "/operationResults/" in pending.headers["Location"]
    assert arm.get(pending.headers["Location"]).status_code == 204


def test_operation_failed(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.add_fault(Fault("operation_failed"))
    jobs_before = len(azure_backup_emulator.jobs)
    accepted = arm.trigger_backup(VM_ITEM)
    assert accepted.status_code == 202
    status = arm.follow_operation(accepted)
    assert status["status"] == "Failed"
    assert status["error"]["code"] == "CloudInternalError"
    assert "properties" not in status
    failed_result = arm.get(accepted.headers["Location"])
    assert failed_result.status_code == 400
    assert failed_result.json()["error"]["code"] == "CloudInternalError"
    assert len(azure_backup_emulator.jobs) == jobs_before
    assert arm.trigger_backup(VM_ITEM).status_code == 202  # no job is blocking the item


def test_foreign_async_host(arm: Arm, azure_backup_emulator: Emulator) -> None:
    emu = azure_backup_emulator
    emu.add_fault(Fault("foreign_async_host"))
    accepted = arm.trigger_backup(VM_ITEM)
    for header in ("Azure-AsyncOperation", "Location"):
        url = urlsplit(accepted.headers[header])
        assert (url.hostname, url.port) == ("localhost", emu.port)
    # a client that follows it blindly hands its token to that host, and the log shows it
    followed = arm.get(accepted.headers["Azure-AsyncOperation"])
    assert followed.status_code == 200
    leak = emu.requests[-1]
    assert leak.host == f"localhost:{emu.port}"
    assert leak.has_bearer and leak.token_sha256
    # one-shot: the next 202 is back on 127.0.0.1
    next_accepted = arm.trigger_backup(FILE_SHARE_ITEM)
    assert urlsplit(next_accepted.headers["Location"]).hostname == "127.0.0.1"
    # and the jobs-list nextLink
    emu.configure(job_page_size=2)
    emu.add_fault(Fault("foreign_async_host", method="GET"))
    next_link = arm.get("/backupJobs").json()["nextLink"]
    assert urlsplit(next_link).hostname == "localhost"
    assert urlsplit(arm.get("/backupJobs").json()["nextLink"]).hostname == "127.0.0.1"


def test_faults_do_not_touch_token_or_admin_endpoints(azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.add_fault(Fault("throttle", count=5))
    assert Arm(azure_backup_emulator).token  # token endpoint is not faulted
    assert requests.get(f"{azure_backup_emulator.base_url}/_emulator/health", verify=azure_backup_emulator.ca_file).ok
    assert azure_backup_emulator.faults[0]["remaining"] == 5
    azure_backup_emulator.clear_faults()
    assert azure_backup_emulator.faults == []
