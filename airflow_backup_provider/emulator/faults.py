"""Armed faults (:class:`~.config.Fault`) and the responses of the ones that replace an answer.

:class:`FaultBook` is thread-safe on its own (one small lock, never held across a request).
"""

from __future__ import annotations

import dataclasses
import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

from .config import Fault
from .wire import ArmError, HttpResponse

# Faults decided when the request arrives, before it is processed.
ENTRY_FAULTS = ("throttle", "unavailable", "reset", "slow", "reset_after", "error_after", "truncated")


@dataclass
class ArmedFault:
    fault: Fault
    fault_id: str
    last_job_seq: int  # newest job when the fault was armed (job_not_found covers only later jobs)
    remaining: int
    per_job: dict[str, int] = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        if self.fault.method and self.fault.method.upper() != method.upper():
            return False
        return not (self.fault.path_regex and not re.search(self.fault.path_regex, path, re.IGNORECASE))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.fault_id, "remaining": self.remaining, **self.fault.to_dict()}


class FaultBook:
    """The armed faults, in the order they were added (the first match fires)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[ArmedFault] = []

    def add(self, fault: Fault, last_job_seq: int) -> str:
        """Arm ``fault``; returns its id.

        :param fault: the fault.
        :param last_job_seq: the newest job's creation number (``job_not_found`` covers only later jobs).
        """
        armed = ArmedFault(dataclasses.replace(fault), uuid.uuid4().hex[:12], last_job_seq, fault.count)
        with self._lock:
            self._faults.append(armed)
        return armed.fault_id

    def clear(self) -> None:
        with self._lock:
            self._faults = []

    def armed(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def take(self, kinds: tuple[str, ...], method: str, path: str) -> ArmedFault | None:
        """Consume one shot of the first armed fault of ``kinds`` matching the request.

        :param kinds: the fault kinds that apply at this point of the request.
        :param method: the request method.
        :param path: the percent-decoded request path.
        """
        if not self._faults:
            return None
        with self._lock:
            for armed in self._faults:
                if armed.fault.kind in kinds and armed.remaining > 0 and armed.matches(method, path):
                    armed.remaining -= 1
                    if armed.remaining <= 0:
                        self._faults.remove(armed)
                    return armed
        return None

    def job_not_found(self, method: str, path: str, job_id: str, job_seq: int) -> bool:
        """job_not_found: 404 for the first ``count`` GETs of each job it covers; stays armed until cleared."""
        if not self._faults:
            return False
        with self._lock:
            for armed in self._faults:
                if armed.fault.kind != "job_not_found" or not armed.matches(method, path):
                    continue
                if armed.fault.path_regex is None and job_seq <= armed.last_job_seq:
                    continue  # without a pattern only jobs created after the fault was added are covered
                left = armed.per_job.setdefault(job_id, armed.fault.count)
                if left > 0:
                    armed.per_job[job_id] = left - 1
                    return True
        return False


def fault_response(fault: Fault, method: str) -> HttpResponse:
    """The answer of a ``throttle`` (429) or ``unavailable`` (503) fault.

    :param fault: the fault.
    :param method: the request method (reads and writes are throttled separately).
    """
    if fault.kind == "throttle":
        operation = "Read" if method == "GET" else "Write"
        return ArmError(
            429,
            "TooManyRequests",
            f"The request is being throttled as the limit has been reached for operation type - {operation}_"
            "ObservationWindow_00:05:00. For more information, see - https://aka.ms/srpthrottlinglimits",
            [("Retry-After", str(fault.retry_after))],
        ).response()
    return ArmError(
        503,
        "ServiceUnavailable",
        "The service is temporarily unavailable. Please retry the request after some time.",
        [("Retry-After", str(fault.retry_after))],
    ).response()


__all__ = ["ENTRY_FAULTS", "ArmedFault", "FaultBook", "fault_response"]
