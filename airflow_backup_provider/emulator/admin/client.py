"""Client of the emulator's ``/_emulator/`` admin API, for steering an emulator that runs in another process
(e.g. one started with ``python -m airflow_backup_provider.emulator`` next to a real Airflow scheduler).

Stdlib only (``urllib``), TLS verified against the emulator's CA file.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from typing import Any

from airflow_backup_provider.emulator.config import Fault, SeededItem
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
        self,
        protected_item_name: str,
        outcome: str = "Completed",
        duration_seconds: float = 1200.0,
        *,
        vault: str | None = None,
    ) -> None:
        payload: dict[str, Any] = {
            "protected_item_name": protected_item_name,
            "outcome": outcome,
            "duration_seconds": duration_seconds,
        }
        if vault is not None:
            payload["vault"] = vault
        self._call("POST", "items/behavior", payload)

    def vaults(self) -> list[dict[str, Any]]:
        """Every vault with ``resource_group``, ``name``, ``id``, ``items``, ``jobs``, ``active_jobs``."""
        result: list[dict[str, Any]] = self._call("GET", "vaults")["value"]
        return result

    def add_vault(self, resource_group: str, name: str) -> str:
        """See :meth:`Emulator.add_vault`; returns the vault's ARM id."""
        return str(self._call("POST", "vaults", {"resource_group": resource_group, "name": name})["id"])

    def add_item(self, vault: str, kind: str, name: str, **options: str) -> SeededItem:
        """See :meth:`Emulator.add_item` (options: ``health``, ``resource_group``, ``source_resource_group``,
        ``storage_account``, ``server``); returns the item's names."""
        return SeededItem(**self._call("POST", "items", {"vault": vault, "kind": kind, "name": name, **options}))

    def seed_health_states(self, vault: str = "vault-demo") -> dict[str, SeededItem]:
        """See :meth:`Emulator.seed_health_states`."""
        result = self._call("POST", "seed/health-states", {"vault": vault})
        return {state: SeededItem(**seed) for state, seed in result.items()}

    def finish_job(self, job_id: str, outcome: str = "Completed") -> dict[str, Any]:
        """End a running job now with ``outcome``; returns the job (as in :meth:`jobs`)."""
        result: dict[str, Any] = self._call(
            "POST", f"jobs/{urllib.parse.quote(job_id, safe='')}/finish", {"outcome": outcome}
        )
        return result

    def configure(self, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "config", changes)
        return result


__all__ = ["AdminClient"]
