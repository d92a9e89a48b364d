"""The route table of the ARM side: (method, pattern) -> handler name, for paths below one vault.

Patterns are matched (``re.fullmatch``, case-insensitive, as ARM paths are) against the *raw* path below
``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{vault}``; named groups are
percent-decoded before the handler sees them, so an encoded ``;`` or ``/`` inside a name stays inside its segment.
A path that matches a pattern under another method is 405 ``MethodNotAllowed``; no match at all is 404 ``NotFound``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_SEGMENT = r"[^/]+"
ITEM = (
    rf"/backupFabrics/(?P<fabric>{_SEGMENT})/protectionContainers/(?P<container>{_SEGMENT})"
    rf"/protectedItems/(?P<item>{_SEGMENT})"
)


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: str  # name of an ArmHandlers method
    operation_id: str  # the spec's operationId, for readers

    @classmethod
    def of(cls, method: str, pattern: str, handler: str, operation_id: str) -> Route:
        return cls(method, re.compile(pattern, re.IGNORECASE), handler, operation_id)


ROUTES: tuple[Route, ...] = (
    Route.of("GET", r"", "get_vault", "Vaults_Get"),
    Route.of("GET", r"/backupProtectedItems", "list_items", "BackupProtectedItems_List"),
    Route.of("GET", ITEM, "get_item", "ProtectedItems_Get"),
    Route.of("POST", ITEM + r"/backup", "trigger_backup", "Backups_Trigger"),
    Route.of(
        "GET",
        ITEM + rf"/operationsStatus/(?P<op>{_SEGMENT})",
        "get_operation_status",
        "ProtectedItemOperationStatuses_Get",
    ),
    Route.of(
        "GET",
        ITEM + rf"/operationResults/(?P<op>{_SEGMENT})",
        "get_operation_result",
        "ProtectedItemOperationResults_Get",
    ),
    Route.of("GET", ITEM + r"/recoveryPoints", "list_recovery_points", "RecoveryPoints_List"),
    Route.of("GET", ITEM + rf"/recoveryPoints/(?P<rp>{_SEGMENT})", "get_recovery_point", "RecoveryPoints_Get"),
    Route.of("POST", ITEM + rf"/recoveryPoints/(?P<rp>{_SEGMENT})/restore", "trigger_restore", "Restores_Trigger"),
    Route.of("GET", rf"/backupOperations/(?P<op>{_SEGMENT})", "get_operation_status", "BackupOperationStatuses_Get"),
    Route.of("GET", r"/backupJobs", "list_jobs", "BackupJobs_List"),
    Route.of("GET", rf"/backupJobs/(?P<job>{_SEGMENT})", "get_job", "JobDetails_Get"),
    Route.of("POST", rf"/backupJobs/(?P<job>{_SEGMENT})/cancel", "cancel_job", "JobCancellations_Trigger"),
    Route.of(
        "GET",
        rf"/backupJobs/(?P<job>{_SEGMENT})/operationResults/(?P<op>{_SEGMENT})",
        "get_cancel_result",
        "JobOperationResults_Get",
    ),
)


@dataclass(frozen=True)
class Match:
    route: Route
    params: dict[str, str]


def match(method: str, raw_rest: str) -> Match | str | None:
    """The route for ``method`` and the raw path below the vault.

    :param method: the request method (upper case).
    :param raw_rest: the raw path below the vault ("" for the vault itself), without empty segments.
    :returns: the match; ``"method"`` when only another method matches; None when nothing does.
    """
    other_method = False
    for route in ROUTES:
        found = route.pattern.fullmatch(raw_rest)
        if found is None:
            continue
        if route.method != method:
            other_method = True
            continue
        return Match(route, {k: unquote(v) for k, v in found.groupdict().items()})
    return "method" if other_method else None


__all__ = ["ROUTES", "Match", "Route", "match"]
