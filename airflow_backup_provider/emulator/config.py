"""Configuration and seed data of the emulator: seeded identities and items, :class:`EmulatorConfig`, :class:`Fault`,
and the value types it hands out (:class:`RecordedRequest`, :class:`JobView`).

Everything here is plain data (no I/O) so it can be imported cheaply, e.g. by the pytest plugin or a demo script.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any, ClassVar, Literal, cast, get_args

# --------------------------------------------------------------------------------------------------------------------
# Seeded identities. Clearly fake values: nothing here is a real tenant, app or secret.
# --------------------------------------------------------------------------------------------------------------------

SUBSCRIPTION_ID = "00000000-0000-0000-0000-0000000000aa"
TENANT_ID = "00000000-0000-0000-0000-0000000000bb"
CLIENT_ID = "00000000-0000-0000-0000-0000000000cc"
CLIENT_SECRET = "emulator-secret-do-not-use"
RESOURCE_GROUP = "rg-backup-demo"
VAULT_NAME = "vault-demo"
LOCATION = "westeurope"
FABRIC_NAME = "Azure"
CONN_TYPE = "azure_backup"
DEFAULT_CONN_ID = "azure_backup_default"

JobOutcome = Literal["Completed", "CompletedWithWarnings", "Failed"]
JOB_OUTCOMES: tuple[str, ...] = get_args(JobOutcome)


@dataclass(frozen=True)
class SeededItem:
    """One protected item of the seeded vault (names exactly as the service spells them)."""

    container_name: str
    protected_item_name: str
    friendly_name: str
    backup_management_type: str  # AzureIaasVM | AzureStorage | AzureWorkload
    workload: str  # workloadType / itemType: VM | AzureFileShare | SQLDataBase
    source_resource_id: str
    fabric_name: str = FABRIC_NAME


VM_ITEM = SeededItem(
    container_name="IaasVMContainer;iaasvmcontainerv2;rg-app;vm-app-01",
    protected_item_name="VM;iaasvmcontainerv2;rg-app;vm-app-01",
    friendly_name="vm-app-01",
    backup_management_type="AzureIaasVM",
    workload="VM",
    source_resource_id=f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-app/providers/Microsoft.Compute/virtualMachines/vm-app-01",
)
FILE_SHARE_ITEM = SeededItem(
    container_name="StorageContainer;Storage;rg-data;stdata01",
    protected_item_name="AzureFileShare;share-reports",
    friendly_name="share-reports",
    backup_management_type="AzureStorage",
    workload="AzureFileShare",
    source_resource_id=f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-data/providers/Microsoft.Storage/storageAccounts/stdata01",
)
SQL_ITEM = SeededItem(
    container_name="VMAppContainer;Compute;rg-sql;vm-sql-01",
    protected_item_name="SQLDataBase;mssqlserver;salesdb",
    friendly_name="salesdb",
    backup_management_type="AzureWorkload",
    workload="SQLDataBase",
    source_resource_id=f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-sql/providers/Microsoft.Compute/virtualMachines/vm-sql-01",
)
SEEDED_ITEMS: tuple[SeededItem, ...] = (VM_ITEM, FILE_SHARE_ITEM, SQL_ITEM)


# --------------------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------------------


@dataclass
class EmulatorConfig:
    """Knobs of one emulator instance. Durations called *virtual* are divided by ``time_scale`` to get wall time.

    - ``time_scale``: virtual seconds per wall-clock second (60 → a 20-minute backup takes 20 s).
    - ``token_lifetime``: ``expires_in`` of issued access tokens, in wall-clock seconds.
    - ``retry_after``: value of every ``Retry-After`` header on 202s (the service sends 60).
    - ``job_page_size``: jobs per ``backupJobs`` page (the service: up to 200).
    - ``item_page_size``: protected items per ``backupProtectedItems`` page (the service: up to 200).
    - ``operation_polls_in_progress``: how many polls of an async operation answer InProgress before it succeeds.
    - ``default_job_duration``: virtual duration of a backup/restore job unless ``set_item_behavior`` says otherwise.
    - ``cancel_duration``: virtual time a cancelled job stays ``Cancelling``.
    - ``max_recorded_requests``: the request log keeps only the newest entries beyond this.

    Seed settings (applied at start and by :meth:`Emulator.reset`, not by ``configure``):

    - ``vaults``: vaults in the seeded resource group: ``vault-demo`` and ``vault-demo-02`` … ``vault-demo-NN``.
    - ``items_per_vault``: healthy generated items in every vault (VM, file share, SQL database in turn), each with
      a recovery point and a completed backup job in the last day; ``vault-demo`` keeps its three seeded items too.
    - ``health_states``: add the four health-check states to ``vault-demo`` (see :func:`.seed.seed_health_states`).
    - ``jobs``: backup jobs already InProgress at start, spread over the vaults, each on its own VM item.
    - ``jobs_duration``: virtual duration of those jobs (default a day).
    """

    host: str = "127.0.0.1"
    port: int = 0
    time_scale: float = 60.0
    token_lifetime: int = 3600
    retry_after: int = 1
    job_page_size: int = 200
    item_page_size: int = 200
    operation_polls_in_progress: int = 1
    default_job_duration: float = 1200.0
    cancel_duration: float = 60.0
    location: str = LOCATION
    max_recorded_requests: int = 10_000
    vaults: int = 1
    items_per_vault: int = 0
    health_states: bool = False
    jobs: int = 0
    jobs_duration: float = 86_400.0

    SEED_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"vaults", "items_per_vault", "health_states", "jobs", "jobs_duration"}
    )

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError for settings the emulator cannot honour."""
        if self.time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        if self.token_lifetime < 1:
            raise ValueError("token_lifetime must be >= 1 second")
        if self.retry_after < 0:
            raise ValueError("retry_after must be >= 0")
        if self.job_page_size < 1:
            raise ValueError("job_page_size must be >= 1")
        if self.item_page_size < 1:
            raise ValueError(f"item_page_size must be >= 1, got {self.item_page_size}")
        if self.operation_polls_in_progress < 0:
            raise ValueError("operation_polls_in_progress must be >= 0")
        if self.default_job_duration < 0 or self.cancel_duration < 0:
            raise ValueError("durations must be >= 0")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be in 0..65535")
        if self.max_recorded_requests < 0:
            raise ValueError(f"max_recorded_requests must be >= 0, got {self.max_recorded_requests}")
        if not 1 <= self.vaults <= 1000:
            raise ValueError(f"vaults must be in 1..1000, got {self.vaults}")
        if not 0 <= self.items_per_vault <= 100_000:
            raise ValueError(f"items_per_vault must be in 0..100000, got {self.items_per_vault}")
        if not 0 <= self.jobs <= 1_000_000:
            raise ValueError(f"jobs must be in 0..1000000, got {self.jobs}")
        if self.jobs_duration <= 0:
            raise ValueError(f"jobs_duration must be > 0, got {self.jobs_duration}")

    @classmethod
    def field_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))


# --------------------------------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------------------------------

FaultKind = Literal[
    "throttle",
    "unavailable",
    "reset",
    "reset_after",
    "error_after",
    "truncated",
    "slow",
    "token_expiry",
    "job_not_found",
    "operation_in_progress",
    "operation_failed",
    "foreign_async_host",
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)


@dataclass
class Fault:
    """A one-shot (``count``-shot) misbehaviour injected into ARM traffic.

    Matching: ``method`` (case-insensitive, None = any) and ``path_regex`` (``re.search``, case-insensitive, on the
    percent-decoded request path, None = any). Token endpoint and ``/_emulator/`` admin requests are never faulted.
    Kinds (see the package docstring for the full semantics):

    - ``throttle``: 429 ``TooManyRequests`` + ``Retry-After: retry_after``; the request is not processed.
    - ``unavailable``: 503 ``ServiceUnavailable`` + ``Retry-After``; not processed.
    - ``reset``: the TCP connection is reset after the request was read, before it is processed; no HTTP response.
    - ``reset_after``: the request *is* processed (a backup starts), then the connection is reset: a lost answer.
    - ``error_after``: the request *is* processed, then answered 500 ``InternalServerError``.
    - ``truncated``: the request *is* processed; the answer's headers promise more body (``Content-Length``) than is
      sent before the connection closes (a truncated body).
    - ``slow``: sleep ``delay`` seconds, then process and answer normally.
    - ``token_expiry``: the (otherwise valid) bearer token is expired from now on → 401 ExpiredAuthenticationToken.
    - ``job_not_found``: ``GET backupJobs/{id}`` answers 404 for the first ``count`` GETs *of each job* created after
      the fault was added (or, with ``path_regex``, of each job whose GET matches); stays armed until cleared.
    - ``operation_in_progress``: the next ``count`` backup/restore operations stay InProgress for ``polls`` polls.
    - ``operation_failed``: the next ``count`` matching backup/restore triggers get a 202 whose operation ends Failed
      (``error.code`` / ``error.message``) and creates no job.
    - ``foreign_async_host``: the next ``count`` 202s (backup/restore/cancel) and jobs-list ``nextLink`` URLs point
      at ``localhost`` instead of ``127.0.0.1`` (same port).
    """

    kind: FaultKind
    count: int = 1
    method: str | None = None
    path_regex: str | None = None
    retry_after: int = 1
    delay: float = 0.0
    polls: int = 3

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if self.count < 1:
            raise ValueError("count must be >= 1")
        if self.retry_after < 0 or self.delay < 0 or self.polls < 0:
            raise ValueError("retry_after, delay and polls must be >= 0")
        if self.path_regex is not None:
            try:
                re.compile(self.path_regex)  # fail early on a bad pattern
            except re.error as error:
                raise ValueError(f"path_regex {self.path_regex!r} is not a valid regular expression: {error}") from None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        """Build a Fault from JSON (admin endpoint); unknown keys are an error."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if "kind" not in data:
            raise ValueError("fault needs a 'kind'")
        return cls(
            kind=cast(FaultKind, str(data["kind"])),
            count=int(data.get("count", 1)),
            method=None if data.get("method") is None else str(data["method"]),
            path_regex=None if data.get("path_regex") is None else str(data["path_regex"]),
            retry_after=int(data.get("retry_after", 1)),
            delay=float(data.get("delay", 0.0)),
            polls=int(data.get("polls", 3)),
        )


# --------------------------------------------------------------------------------------------------------------------
# Observations
# --------------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator received (token endpoint and ARM; admin calls are not recorded).

    Secrets never enter the log: the ``Authorization`` header value is replaced by ``<redacted>`` (``has_bearer`` and
    ``token_sha256`` — the first 12 hex digits of the token's SHA-256 — tell requests apart), and ``client_secret`` /
    ``client_assertion`` form fields are replaced too. ``status`` is 0 when the connection was reset without answer.
    """

    method: str
    path: str  # percent-decoded
    raw_path: str  # as sent, without the query
    query: dict[str, str]
    host: str  # the Host header
    headers: dict[str, str]
    body: Any
    status: int
    timestamp: datetime
    has_bearer: bool = False
    token_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["timestamp"] = self.timestamp.isoformat()
        return data


@dataclass(frozen=True)
class JobView:
    """Read-only snapshot of one job, for tests and demos."""

    job_id: str
    status: str
    operation: str
    protected_item_name: str
    start_time: datetime
    end_time: datetime | None
    job_type: str
    vault_name: str = VAULT_NAME
    resource_group: str = RESOURCE_GROUP

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["start_time"] = self.start_time.isoformat()
        data["end_time"] = self.end_time.isoformat() if self.end_time else None
        return data


@dataclass
class ItemBehavior:
    """How the next jobs (backup and restore) of one item end and how long they run (virtual seconds; None means
    ``EmulatorConfig.default_job_duration``)."""

    outcome: JobOutcome = "Completed"
    duration_seconds: float | None = None
