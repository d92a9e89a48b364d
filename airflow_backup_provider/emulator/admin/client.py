"""Client of the emulator's ``/_emulator/`` admin API, for steering an emulator that runs in another process
(e.g. one started with ``python -m airflow_backup_provider.emulator`` next to a real Airflow scheduler).

Stdlib only (``urllib``), TLS verified against the emulator's CA file.
"""

from __future__ import annotations

import json
import os
import urllib.request
from typing import Any

from airflow_backup_provider.emulator.config import Fault
from airflow_backup_provider.emulator.tls import client_ssl_context


class AdminClient:
    """Thin wrapper over the admin endpoints; every method raises ``urllib.error.HTTPError`` on a non-2xx answer."""

    def __init__(self, base_url: str, ca_file: str | os.PathLike[str], timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._context = client_ssl_context(ca_file)
        self.timeout = timeout

    def _call(self, method: str, route: str, payload: Any = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.base_url}/_emulator/{route}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        with urllib.request.urlopen(request, context=self._context, timeout=self.timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "health")
        return result

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "requests")["value"]
        return result

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    def jobs(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "jobs")["value"]
        return result

    def add_fault(self, fault: Fault) -> str:
        return str(self._call("POST", "faults", fault.to_dict())["id"])

    def faults(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "faults")["value"]
        return result

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def reset(self) -> None:
        self._call("POST", "reset")

    def set_item_behavior(
        self, protected_item_name: str, outcome: str = "Completed", duration_seconds: float = 1200.0
    ) -> None:
        self._call(
            "POST",
            "items/behavior",
            {"protected_item_name": protected_item_name, "outcome": outcome, "duration_seconds": duration_seconds},
        )

    def configure(self, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "config", changes)
        return result


__all__ = ["AdminClient"]
