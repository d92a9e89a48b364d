"""`make bench`: request counts per tracked job and timings, against the emulator. Numbers, never assertions.

Scenarios
- requests per tracked job: what one backup costs in HTTP requests when the job is followed by
  (a) the operator alone, (b) the reschedule sensor (each poke is a fresh process: fresh hook, fresh token),
  (c) the deferrable trigger (one async hook for the whole wait);
- latency of one ``get_job`` round trip (sync and async hook, TLS keep-alive) and of trigger → jobId;
- the pure core: parsing a job body, building a request.

Writes ``benchmarks/results/latest.json`` and prints a table.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import pathlib
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
STARTED = time.perf_counter()
sys.path.insert(0, str(REPO / "benchmarks"))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-backup-bench-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

from airflow_backup_provider.emulator import VM_ITEM, Emulator, EmulatorConfig  # noqa: E402

# aiohttp reads SSL_CERT_FILE when it is imported, so the emulator (and its CA) must exist before the hooks load.
_TMP = tempfile.TemporaryDirectory()
EMULATOR = Emulator(EmulatorConfig(time_scale=300.0), ca_file=f"{_TMP.name}/ca.pem").start()
os.environ.update(EMULATOR.client_env())

from airflow_backup_provider import protocol  # noqa: E402
from airflow_backup_provider.hooks.backup import AzureBackupAsyncHook, AzureBackupHook  # noqa: E402
from airflow_backup_provider.triggers.backup import BackupJobTrigger  # noqa: E402

# A "20-minute" backup takes 4 s; the service's Retry-After (60 s) is scaled to 1 s.
TIME_SCALE = EMULATOR.config.time_scale
POKE_INTERVAL = 1.0
# Wall seconds a tracked job runs after its jobId is known, in the sensor/trigger scenarios (several polls).
JOB_SECONDS = 6.0


def classify(request: Any) -> str:
    path = request.path.lower()
    if path.endswith("/oauth2/v2.0/token"):
        return "token"
    if "/.well-known/" in path:
        return "authority metadata"
    if request.method == "POST":
        return "POST " + path.rsplit("/", 1)[-1]
    if "operationsstatus" in path or "/backupoperations/" in path or "operationresults" in path:
        return "GET operation"
    if "/backupjobs/" in path:
        return "GET job"
    return "GET other"


def counts(emulator: Emulator) -> dict[str, int]:
    return dict(Counter(classify(r) for r in emulator.requests))


def scenario_operator_only(emulator: Emulator) -> dict[str, Any]:
    emulator.reset()
    hook = AzureBackupHook()
    started = time.perf_counter()
    hook.trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name)
    return {"job_id_after_s": round(time.perf_counter() - started, 3), "requests": counts(emulator)}


def start_tracked_job(emulator: Emulator) -> str:
    """A backup that finishes JOB_SECONDS after its jobId is known (however long the trigger took)."""
    emulator.reset()
    emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=86400 * TIME_SCALE)
    job_id = AzureBackupHook().trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name).job_id
    timer = threading.Timer(JOB_SECONDS, emulator.finish_job, args=(job_id,))
    timer.daemon = True
    timer.start()
    return job_id


def scenario_reschedule_sensor(emulator: Emulator) -> dict[str, Any]:
    job_id = start_tracked_job(emulator)
    pokes = 0
    while True:  # each poke: a fresh task process → a fresh hook (no token cache survives a reschedule)
        pokes += 1
        job = AzureBackupHook().get_job(job_id)
        if job.is_terminal:
            break
        time.sleep(POKE_INTERVAL)
    return {"pokes": pokes, "requests": counts(emulator)}


def scenario_deferrable(emulator: Emulator, batched: bool = False) -> dict[str, Any]:
    job_id = start_tracked_job(emulator)

    async def wait() -> dict[str, Any]:
        trigger = BackupJobTrigger(
            job_id=job_id,
            azure_backup_conn_id="azure_backup_default",
            end_time=time.time() + 120,
            poll_interval=1,
            batched=batched,
        )
        async for event in trigger.run():
            return event.payload
        raise RuntimeError("no event")

    event = asyncio.run(wait())
    return {"event": event["status"], "requests": counts(emulator)}


def latency(emulator: Emulator, rounds: int = 200) -> dict[str, Any]:
    emulator.reset()
    hook = AzureBackupHook()
    job_id = hook.trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name).job_id
    sync_ms = []
    for _ in range(rounds):
        t = time.perf_counter()
        hook.get_job(job_id)
        sync_ms.append((time.perf_counter() - t) * 1000)

    async def run_async() -> list[float]:
        out = []
        async with AzureBackupAsyncHook() as ahook:
            for _ in range(rounds):
                t = time.perf_counter()
                await ahook.aget_job(job_id)
                out.append((time.perf_counter() - t) * 1000)
        return out

    async_ms = asyncio.run(run_async())
    trigger_s = []
    for _ in range(3):  # each waits out the operation's 5 s poll
        emulator.reset()
        t = time.perf_counter()
        AzureBackupHook().trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name)
        trigger_s.append(time.perf_counter() - t)
    return {
        "get_job_sync_ms_median": round(statistics.median(sync_ms), 2),
        "get_job_sync_ms_p95": round(sorted(sync_ms)[int(rounds * 0.95)], 2),
        "get_job_async_ms_median": round(statistics.median(async_ms), 2),
        "get_job_async_ms_p95": round(sorted(async_ms)[int(rounds * 0.95)], 2),
        "trigger_to_job_id_s_median_fresh_hook": round(statistics.median(trigger_s), 3),
    }


def core(rounds: int = 20000) -> dict[str, Any]:
    body = json.loads((REPO / "tests/spec/examples/GetJobDetails.json").read_text())["responses"]["200"]["body"]
    t = time.perf_counter()
    for _ in range(rounds):
        protocol.parse_job(body)
    parse_us = (time.perf_counter() - t) / rounds * 1e6
    api = protocol.BackupApi("https://management.azure.com")
    item = protocol.ItemRef(
        protocol.VaultRef("sub", "rg", "vault"), VM_ITEM.container_name, VM_ITEM.protected_item_name
    )
    t = time.perf_counter()
    for _ in range(rounds):
        api.trigger_backup(item, {"properties": {"objectType": "IaasVMBackupRequest"}})
    build_us = (time.perf_counter() - t) / rounds * 1e6
    return {"parse_job_us": round(parse_us, 2), "build_trigger_request_us": round(build_us, 2)}


def main() -> int:
    results: dict[str, Any] = {"python": sys.version.split()[0], "time_scale": TIME_SCALE}
    logging.getLogger().setLevel(logging.WARNING)
    try:
        results["operator_only"] = scenario_operator_only(EMULATOR)
        results["reschedule_sensor"] = scenario_reschedule_sensor(EMULATOR)
        results["deferrable_trigger"] = scenario_deferrable(EMULATOR)
        results["batched_trigger"] = scenario_deferrable(EMULATOR, batched=True)
        results["latency"] = latency(EMULATOR)
    finally:
        EMULATOR.stop()
        _TMP.cleanup()
    results["core"] = core()
    import fleet  # benchmarks/fleet.py: separate processes for the emulator and every measured program

    results["fleet"] = fleet.run_all()
    results["wall_s_total"] = round(time.perf_counter() - STARTED, 1)
    out = REPO / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    (REPO / "BENCHMARKS.md").write_text(fleet.render_markdown(results))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
