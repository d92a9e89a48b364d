"""Shared helpers for the emulator's own tests: a thin ``requests`` client that talks ARM to the emulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
import requests

from airflow_backup_provider.emulator import CLIENT_ID, CLIENT_SECRET, TENANT_ID, Emulator, SeededItem

API_VERSION = "2026-10-01"


def fetch_token(emulator: Emulator, secret: str = CLIENT_SECRET) -> requests.Response:
    """A client-credentials POST to the emulated Entra token endpoint, exactly as MSAL sends it."""
    return requests.post(
        f"{emulator.base_url}/{TENANT_ID}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": secret,
            "scope": f"{emulator.base_url}/.default",
        },
        verify=emulator.ca_file,
        timeout=10,
    )


class Arm:
    """Raw ARM calls against the emulator with a bearer token from its token endpoint."""

    def __init__(self, emulator: Emulator) -> None:
        self.emu = emulator
        response = fetch_token(emulator)
        response.raise_for_status()
        self.token: str = response.json()["access_token"]
        self.session = requests.Session()

    def url(self, path: str) -> str:
        if path.startswith("https://"):
            return path
        return self.emu.vault_url + path

    def request(self, method: str, path: str, *, token: str | None = None, api_version: bool = True,
                **kwargs: Any) -> requests.Response:  # fmt: skip
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is None:
            token = self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        params = dict(kwargs.pop("params", {}) or {})
        url = self.url(path)
        if api_version and "api-version=" not in url:
            params.setdefault("api-version", API_VERSION)
        kwargs.setdefault("timeout", 10)
        return self.session.request(method, url, headers=headers, params=params, verify=self.emu.ca_file, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def item_path(self, item: SeededItem) -> str:
        return (
            f"/backupFabrics/{item.fabric_name}/protectionContainers/{item.container_name}"
            f"/protectedItems/{item.protected_item_name}"
        )

    def trigger_backup(self, item: SeededItem, properties: dict[str, Any] | None = None) -> requests.Response:
        if properties is None:
            properties = {"objectType": backup_request_type(item)}
        return self.post(self.item_path(item) + "/backup", json={"properties": properties})

    def follow_operation(self, accepted: requests.Response, timeout: float = 5.0) -> dict[str, Any]:
        """Poll the Azure-AsyncOperation URL of a 202 until the operation is no longer InProgress."""
        url = accepted.headers["Azure-AsyncOperation"]
        deadline = time.monotonic() + timeout
        while True:
            status = self.get(url)
            assert status.status_code == 200, status.text
            body: dict[str, Any] = status.json()
            if body["status"] != "InProgress":
                return body
            assert time.monotonic() < deadline, "operation did not finish"
            time.sleep(0.02)

    def job(self, job_id: str) -> dict[str, Any]:
        response = self.get(f"/backupJobs/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_for_job(
        self, job_id: str, timeout: float = 8.0, done: Callable[[str], bool] | None = None
    ) -> dict[str, Any]:
        finished = done or (lambda status: status not in ("InProgress", "Cancelling"))
        deadline = time.monotonic() + timeout
        while True:
            body = self.job(job_id)
            if finished(body["properties"]["status"]):
                return body
            assert time.monotonic() < deadline, f"job still {body['properties']['status']}"
            time.sleep(0.05)


def backup_request_type(item: SeededItem) -> str:
    return {
        "VM": "IaasVMBackupRequest",
        "AzureFileShare": "AzureFileShareBackupRequest",
        "SQLDataBase": "AzureWorkloadBackupRequest",
    }[item.workload]


@pytest.fixture
def arm(azure_backup_emulator: Emulator) -> Arm:
    return Arm(azure_backup_emulator)
