"""HTTPS emulator of the Entra ID token endpoint and the Azure Backup (Recovery Services) ARM API.

Azure is not reachable from tests and demos; this package stands in for it with responses shaped like the official
spec examples (``tests/spec/bms.json``, api-version 2026-10-01, and ``tests/spec/examples``).

What is emulated (all on one ``https://127.0.0.1:PORT`` origin, TLS with a throwaway CA):

- Entra ID: ``GET /{tenant}/v2.0/.well-known/openid-configuration`` (and the v1 path, instance discovery, JWKS) and
  ``POST /{tenant}/oauth2/v2.0/token`` (client credentials, AADSTS errors), enough for azure-identity's sync and
  async ``ClientSecretCredential`` with ``authority=base_url`` and ``disable_instance_discovery=True``. Scopes are
  ``<resource>/.default`` for the audiences ARM accepts: the emulator's own ``base_url``,
  ``https://management.azure.com/`` and ``https://management.core.windows.net/`` (with or without the trailing slash),
  so the official SDKs work with their default credential scopes; any other resource is AADSTS500011.
- ARM, below ``/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.RecoveryServices/vaults/{vault}``: vault
  GET, protected items (list/get), backup trigger → operation status/result → job, jobs (get/list with $filter and
  paging/cancel + cancel result), recovery points (list/get) and restore trigger. Bearer tokens from the token
  endpoint are required (401 AuthenticationFailed / InvalidAuthenticationToken / ExpiredAuthenticationToken).
- Jobs progress lazily with the wall clock scaled by ``time_scale``; outcome and virtual duration per item are set
  with :meth:`Emulator.set_item_behavior`.

Faults (:class:`Fault`; each matches ARM requests by optional ``method`` and ``path_regex`` — ``re.search``,
case-insensitive, on the percent-decoded path — and fires for the first ``count`` matches, then disarms):

- ``throttle``: 429 ``TooManyRequests`` with ``Retry-After: retry_after``; the request is not acted on.
- ``unavailable``: 503 ``ServiceUnavailable`` with ``Retry-After``; not acted on.
- ``reset``: the request is read, then the connection is reset (TCP RST, no response); a POST is not acted on.
- ``reset_after`` / ``error_after``: the request *is* acted on (a backup starts), then the connection is reset or the
  answer is a 500: the client cannot know whether the service acted.
- ``truncated``: the request *is* acted on (a POST starts its backup), then the status line and headers are sent
  with a ``Content-Length`` larger than the body that follows (half the body; at least 1 byte is promised), and the
  connection closes: a truncated body, for GET and POST alike.
- ``slow``: the answer is delayed by ``delay`` seconds (then processed normally).
- ``token_expiry``: the presented (valid) bearer token is expired from now on → 401 ExpiredAuthenticationToken;
  requests without a valid token do not consume it; a newly issued token works.
- ``job_not_found``: ``GET backupJobs/{id}`` → 404 ``BMSUserErrorJobNotFound`` for the first ``count`` GETs of *each*
  job created after the fault was added (with ``path_regex``: of each job whose GET path matches, old ones included).
  Unlike the others it stays armed until :meth:`Emulator.clear_faults` / :meth:`Emulator.reset`.
- ``operation_in_progress``: the next ``count`` backup/restore operations polled (operationsStatus, backupOperations
  or operationResults, matched on the poll request) answer InProgress for ``polls`` polls before completing.
- ``operation_failed`` (emulator extra): the next ``count`` backup/restore triggers answer 202, but their operation
  ends ``Failed`` with ``error`` {code CloudInternalError} and creates no job; operationResults answers 400.
- ``foreign_async_host``: the next ``count`` backup/restore/cancel 202s and jobs-list ``nextLink`` URLs use host
  ``localhost`` instead of ``127.0.0.1`` (same port, same certificate), to catch clients that send their bearer token
  to whatever host a response names (the request log shows ``host`` and ``has_bearer``).

Admin API (no auth) under ``/_emulator/``: ``GET health``, ``GET|DELETE requests``, ``GET jobs``,
``GET|POST|DELETE faults``, ``POST reset``, ``POST items/behavior``, ``GET|POST config``, ``GET|POST vaults``,
``POST items``, ``POST seed/health-states``, ``POST jobs/{id}/finish``; :class:`AdminClient` wraps it.

Fleets and load: ``EmulatorConfig(vaults=, items_per_vault=, health_states=, jobs=, jobs_duration=)`` (CLI
``--vaults`` ...) seed many vaults, items and running jobs; :meth:`Emulator.add_vault`, :meth:`Emulator.add_item`
and :meth:`Emulator.seed_health_states` grow the fleet at run time. State is per vault and indexed (a job GET is
O(1), a jobs page O(page)); no lock is held across vaults.

Where things are (in the style of moto / Azurite): :mod:`.config` (seeded identities, :class:`EmulatorConfig`,
:class:`Fault`, value types), :mod:`.entra` (token endpoint, metadata, issued tokens), :mod:`.arm` (``service``: the
request pipeline; ``routes``: the route table; ``handlers``: one handler per operation), :mod:`.faults`, :mod:`.odata`
(``$filter`` and ``$skipToken``), :mod:`.state` (vaults, items, jobs, operations) apart from :mod:`.render` (their
JSON), :mod:`.seed` (seed data), :mod:`.admin` (``routes``: the admin API; ``client``: :class:`AdminClient`),
:mod:`.app` (dispatch, request log), :mod:`.server` (HTTPS transport), :mod:`.facade` (the :class:`Emulator` facade),
:mod:`.tls` (throwaway CA from ``trustme``), :mod:`.pytest_plugin` (opt-in fixtures).

This package never imports Airflow.
"""

from __future__ import annotations

# Its dependencies are the ``emulator`` extra, not the provider's: say so instead of a bare ModuleNotFoundError.
try:
    import certifi  # noqa: F401
    import trustme  # noqa: F401
except ImportError as _missing:
    raise ImportError(
        f"airflow_backup_provider.emulator needs {_missing.name or 'trustme and certifi'}, which come with the "
        "'emulator' extra: pip install 'airflow-backup-provider[emulator]'"
    ) from _missing

from .admin import AdminClient
from .config import (
    CLIENT_ID,
    CLIENT_SECRET,
    CONN_TYPE,
    DEFAULT_CONN_ID,
    FABRIC_NAME,
    FAULT_KINDS,
    FILE_SHARE_ITEM,
    JOB_OUTCOMES,
    LOCATION,
    RESOURCE_GROUP,
    SEEDED_ITEMS,
    SQL_ITEM,
    SUBSCRIPTION_ID,
    TENANT_ID,
    VAULT_NAME,
    VM_ITEM,
    EmulatorConfig,
    Fault,
    FaultKind,
    JobOutcome,
    JobView,
    RecordedRequest,
    SeededItem,
)
from .facade import Emulator

__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "CONN_TYPE",
    "DEFAULT_CONN_ID",
    "FABRIC_NAME",
    "FAULT_KINDS",
    "FILE_SHARE_ITEM",
    "JOB_OUTCOMES",
    "LOCATION",
    "RESOURCE_GROUP",
    "SEEDED_ITEMS",
    "SQL_ITEM",
    "SUBSCRIPTION_ID",
    "TENANT_ID",
    "VAULT_NAME",
    "VM_ITEM",
    "AdminClient",
    "Emulator",
    "EmulatorConfig",
    "Fault",
    "FaultKind",
    "JobOutcome",
    "JobView",
    "RecordedRequest",
    "SeededItem",
]
