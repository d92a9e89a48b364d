"""The emulator as a load target: 10 vaults x 1,000 InProgress jobs, pages and GETs stay correct; a thousand clients
connected at once are all served; the admin API lists jobs with their vault and the request log stays bounded.
No timing assertions (timings belong to the benchmarks)."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import pathlib
import socket
import ssl
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from airflow_backup_provider.emulator import VAULT_NAME, AdminClient, Emulator, EmulatorConfig

from .conftest import API_VERSION, Arm

VAULTS = 10
JOBS = 10_000


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    ca_file = tmp_path_factory.mktemp("load") / "ca.pem"
    config = EmulatorConfig(time_scale=60, vaults=VAULTS, jobs=JOBS, job_page_size=200, max_recorded_requests=50_000)
    with Emulator(config, ca_file=ca_file) as emulator:
        yield emulator


def _vault(index: int) -> str:
    return VAULT_NAME if index == 1 else f"{VAULT_NAME}-{index:02d}"


def test_every_vault_holds_its_share_of_the_running_jobs(loaded: Emulator) -> None:
    summary = {v["name"]: v for v in loaded.vaults}
    assert len(summary) == VAULTS
    for index in range(1, VAULTS + 1):
        assert summary[_vault(index)]["active_jobs"] == JOBS // VAULTS
    assert summary[VAULT_NAME]["jobs"] == JOBS // VAULTS + 9  # plus the seeded history


def test_jobs_pages_and_job_get_stay_correct(loaded: Emulator) -> None:
    arm = Arm(loaded)
    vault_url = loaded.vault_url_of(_vault(5))
    first = arm.get(f"{vault_url}/backupJobs")
    assert first.status_code == 200, first.text
    body = first.json()
    assert len(body["value"]) == 200 and body["nextLink"]
    seen: list[dict[str, Any]] = list(body["value"])
    next_link = body["nextLink"]
    while next_link:
        page = arm.get(next_link).json()
        seen.extend(page["value"])
        next_link = page.get("nextLink")
    assert len(seen) == JOBS // VAULTS
    assert len({j["name"] for j in seen}) == len(seen)
    starts = [datetime.fromisoformat(j["properties"]["startTime"].replace("Z", "+00:00")) for j in seen]
    assert starts == sorted(starts, reverse=True)  # newest first across pages
    assert {j["properties"]["status"] for j in seen} == {"InProgress"}
    assert {j["properties"]["operation"] for j in seen} == {"Backup"}
    # each job on its own item; round-robin: vault 5 holds jobs 4, 14, 24, ...
    names = {j["properties"]["entityFriendlyName"] for j in seen}
    assert len(names) == len(seen)
    assert all(int(name.rsplit("-", 1)[1]) % VAULTS == 4 for name in names)

    job = seen[537]
    got = arm.get(f"{vault_url}/backupJobs/{job['name']}")
    assert got.status_code == 200
    assert got.json()["properties"]["entityFriendlyName"] == job["properties"]["entityFriendlyName"]
    assert got.json()["properties"]["status"] == "InProgress"
    elsewhere = arm.get(f"{loaded.vault_url_of(_vault(6))}/backupJobs/{job['name']}")
    assert (elsewhere.status_code, elsewhere.json()["error"]["code"]) == (404, "BMSUserErrorJobNotFound")

    # a running-status page walks only running jobs; a finished job leaves it and its GET says so
    loaded.finish_job(job["name"], "Failed")
    running = arm.get(f"{vault_url}/backupJobs", params={"$filter": "status eq 'InProgress'"}).json()
    assert len(running["value"]) == 200 and running["nextLink"]
    assert job["name"] not in {j["name"] for j in running["value"]}
    failed = arm.get(f"{vault_url}/backupJobs", params={"$filter": "status eq 'Failed'"}).json()
    assert [j["name"] for j in failed["value"]] == [job["name"]]
    assert arm.get(f"{vault_url}/backupJobs/{job['name']}").json()["properties"]["status"] == "Failed"
    by_id = arm.get(f"{vault_url}/backupJobs", params={"$filter": f"jobId eq '{job['name']}'"}).json()
    assert [j["name"] for j in by_id["value"]] == [job["name"]]


def _get_job(context: ssl.SSLContext, raw: socket.socket, host: str, path: str, token: str) -> tuple[int, Any]:
    with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
        tls.sendall(
            f"GET {path}?api-version={API_VERSION} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        response = http.client.HTTPResponse(tls)
        response.begin()
        return response.status, json.loads(response.read())


def test_a_thousand_clients_connected_at_once_are_all_served(loaded: Emulator) -> None:
    token = loaded.issue_token()
    jobs = [j for j in loaded.jobs if j.operation == "Backup" and j.status == "InProgress"][:1000]
    host = f"127.0.0.1:{loaded.port}"
    sockets = [socket.create_connection(("127.0.0.1", loaded.port), timeout=60) for _ in jobs]  # all at once
    context = loaded.ssl_context()
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
            futures = [
                pool.submit(
                    _get_job,
                    context,
                    raw,
                    host,
                    f"{loaded.app.resolve_vault(job.vault_name).vault_path}/backupJobs/{job.job_id}",
                    token,
                )
                for raw, job in zip(sockets, jobs, strict=True)
            ]
            answers = [f.result() for f in futures]
    finally:
        for raw in sockets:
            raw.close()
    assert [status for status, _ in answers] == [200] * len(jobs)
    assert [body["name"] for _, body in answers] == [job.job_id for job in jobs]


def test_admin_lists_jobs_with_vault_and_a_bounded_request_log(loaded: Emulator, tmp_path: pathlib.Path) -> None:
    admin = AdminClient(loaded.base_url, loaded.ca_file)
    jobs = admin.jobs()
    assert len(jobs) == JOBS + 9
    assert {"job_id", "status", "vault_name", "resource_group"} <= set(jobs[0])
    assert {j["vault_name"] for j in jobs} == {_vault(i) for i in range(1, VAULTS + 1)}
    arm = Arm(loaded)
    admin.clear_requests()
    assert admin.requests() == []
    loaded.configure(max_recorded_requests=5)
    for _ in range(8):
        assert arm.get("").status_code == 200
    log = admin.requests()
    assert len(log) == 5
    assert all(entry["path"] == loaded.vault_id and entry["timestamp"] for entry in log)
    loaded.configure(max_recorded_requests=50_000)
