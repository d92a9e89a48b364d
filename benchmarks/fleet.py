"""Fleet-scale benchmarks of `make bench` (issue 9): cold pokes, a triggerer with thousands of waits, a nightly check.

Every measured program runs in its own process (``python benchmarks/fleet.py <role> ...``) against an emulator that
runs in another process (``python -m airflow_backup_provider.emulator``), so the numbers are the client's alone.
Numbers, never assertions: :func:`run_all` returns them and ``benchmarks/run.py`` writes BENCHMARKS.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent
_PARTIAL = REPO / "benchmarks" / "results" / "triggerer-partial.json"
PY = sys.executable


# ---------------------------------------------------------------------------------------------------------------------
# The emulator in its own process
# ---------------------------------------------------------------------------------------------------------------------


class EmulatorProcess:
    """``python -m airflow_backup_provider.emulator`` with the given flags; ``env`` is what clients export."""

    def __init__(self, *flags: str) -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="bench-emulator-")
        ca = f"{self.tmp.name}/ca.pem"
        self.proc = subprocess.Popen(
            [PY, "-m", "airflow_backup_provider.emulator", "--ca-file", ca, "--retry-after", "0", *flags],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        self.env: dict[str, str] = {}
        assert self.proc.stdout is not None
        while len(self.env) < 3:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the emulator exited before printing its settings")
            name, _, value = line.strip().partition("=")
            self.env[name] = value
        conn = json.loads(self.env["AIRFLOW_CONN_AZURE_BACKUP_DEFAULT"])
        self.base_url = conn["extra"]["resource_manager_endpoint"]
        self.ca_file = self.env["SSL_CERT_FILE"]
        from airflow_backup_provider.emulator import AdminClient

        self.admin = AdminClient(self.base_url, self.ca_file, timeout=120)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.tmp.cleanup()

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
        env["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
        env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "WARNING"
        return env


def measured_run(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run a child to completion; its CPU (user+sys), wall time and peak RSS from ``wait4``."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    out = proc.stdout.read().decode() if proc.stdout else ""
    err = proc.stderr.read().decode() if proc.stderr else ""
    if status != 0:
        raise RuntimeError(f"{cmd[2:]} failed ({status}): {err[-2000:]}")
    return {
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "wall_s": wall,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "verdict": out.strip().splitlines()[-1] if out.strip() else "",
    }


# ---------------------------------------------------------------------------------------------------------------------
# Roles (each runs in a child process)
# ---------------------------------------------------------------------------------------------------------------------


def role_floor() -> None:
    import airflow.sdk  # noqa: F401

    print("imported")


def role_poke_provider(job_id: str) -> None:
    from airflow.providers.common.compat.sdk import PokeReturnValue

    from airflow_backup_provider.sensors.backup import BackupJobSensor

    class TI:
        def xcom_push(self, key: str, value: object) -> None: ...

    result = BackupJobSensor(task_id="wait", job_id=job_id).poke({"ti": TI()})  # type: ignore[arg-type]
    print("done" if isinstance(result, PokeReturnValue) and result.is_done else "not done")


def role_poke_sdk(job_id: str) -> None:
    from airflow.providers.standard.sensors.python import PythonSensor
    from azure.identity import ClientSecretCredential
    from azure.mgmt.recoveryservicesbackup import RecoveryServicesBackupClient

    conn = json.loads(os.environ["AIRFLOW_CONN_AZURE_BACKUP_DEFAULT"])
    extra = conn["extra"]
    base = extra["resource_manager_endpoint"]

    def check() -> bool:
        credential = ClientSecretCredential(
            extra["tenant_id"],
            conn["login"],
            conn["password"],
            authority=extra.get("authority_host", base),
            disable_instance_discovery=True,
        )
        with RecoveryServicesBackupClient(
            credential, extra["subscription_id"], base_url=base, credential_scopes=[base + "/.default"]
        ) as client:
            job = client.job_details.get(extra["vault_name"], extra["resource_group_name"], job_id)
        return job.properties.status in ("Completed", "CompletedWithWarnings", "Failed", "Cancelled")

    done = PythonSensor(task_id="wait", python_callable=check).poke({})  # type: ignore[arg-type]
    print("done" if done else "not done")


def role_triggerer(mode: str, interval_text: str, spec_file: str, out_file: str) -> None:
    """N waits in one event loop; measures start-up, steady-state CPU/RSS, loop stalls and detection latency."""
    interval = float(interval_text)
    import asyncio
    import resource

    from airflow_backup_provider.emulator import AdminClient
    from airflow_backup_provider.triggers.backup import BackupJobTrigger

    spec = json.loads(pathlib.Path(spec_file).read_text())
    jobs: list[dict[str, str]] = spec["jobs"]
    admin = AdminClient(spec["base_url"], spec["ca_file"], timeout=120)
    result: dict[str, Any] = {"mode": mode, "waits": len(jobs)}

    async def main() -> None:
        events: dict[str, float] = {}
        stalls: list[float] = []

        async def probe() -> None:
            while True:
                t = time.perf_counter()
                await asyncio.sleep(0.05)
                stalls.append(time.perf_counter() - t - 0.05)

        async def wait(job: dict[str, str]) -> None:
            trigger = BackupJobTrigger(
                job_id=job["job_id"],
                azure_backup_conn_id="azure_backup_default",
                end_time=time.time() + 3600,
                poll_interval=interval,
                resource_group_name=job["resource_group"],
                vault_name=job["vault"],
                batched=mode == "batched",
            )
            async for event in trigger.run():
                events[job["job_id"]] = time.time()
                assert event.payload["status"] == "success", event.payload
                return

        prober = asyncio.create_task(probe())
        t0 = time.perf_counter()
        tasks = [asyncio.create_task(wait(j)) for j in jobs]
        # Start-up: every wait has run its first step and the loop answers within 100 ms again.
        await asyncio.sleep(0)
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            if time.perf_counter() - t < 0.1:
                break
        result["startup_s"] = time.perf_counter() - t0
        await asyncio.sleep(interval)  # settle: first polls done
        await asyncio.to_thread(admin.clear_requests)
        stalls.clear()
        r0, c0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time(), time.perf_counter()
        await asyncio.sleep(3 * interval)
        c1, w1 = time.process_time(), time.perf_counter()
        recorded = await asyncio.to_thread(admin.requests)
        result["steady_cpu_pct_of_one_core"] = 100 * (c1 - c0) / (w1 - w0)
        del r0
        arm = [r for r in recorded if "/oauth2/" not in r["path"] and "/.well-known/" not in r["path"]]
        result["arm_requests_per_interval"] = len(arm) / 3
        per_second = Counter(int(datetime.fromisoformat(r["timestamp"]).timestamp()) for r in arm)
        result["busiest_second"] = max(per_second.values(), default=0)
        result["mean_per_second"] = len(arm) / (3 * interval)
        result["max_loop_stall_s"] = max(stalls, default=0.0)
        result["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        sample = random.Random(1).sample(jobs, max(1, min(20, len(jobs) // 10)))
        finished: dict[str, float] = {}
        for job in sample:
            await asyncio.to_thread(admin.finish_job, job["job_id"])
            finished[job["job_id"]] = time.time()
        deadline = time.time() + 3 * interval + 5
        while time.time() < deadline and not all(j in events for j in finished):
            await asyncio.sleep(0.05)
        latencies = [events[j] - t for j, t in finished.items() if j in events]
        result["finished_ids"] = list(finished)
        result["detected"] = f"{len(latencies)}/{len(finished)}"
        result["detection_latency_s_median"] = statistics.median(latencies) if latencies else None
        result["detection_latency_s_max"] = max(latencies) if latencies else None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        prober.cancel()

    asyncio.run(main())
    pathlib.Path(out_file).write_text(json.dumps(result))


def role_health(spec_file: str, out_file: str) -> None:
    """The nightly check's reads over every vault: list protected items + list the last day's jobs."""
    from datetime import timedelta, timezone

    from airflow_backup_provider.hooks.backup import AzureBackupHook

    spec = json.loads(pathlib.Path(spec_file).read_text())
    t0 = time.perf_counter()
    hook = AzureBackupHook()
    items = jobs = 0
    since = datetime.now(timezone.utc) - timedelta(hours=24)
    for vault in spec["vaults"]:
        items += len(hook.list_protected_items(resource_group_name=vault["resource_group"], vault_name=vault["name"]))
        jobs += len(
            hook.list_jobs(start_time=since, resource_group_name=vault["resource_group"], vault_name=vault["name"])
        )
    pathlib.Path(out_file).write_text(
        json.dumps({"wall_s": time.perf_counter() - t0, "items": items, "jobs": jobs, "vaults": len(spec["vaults"])})
    )


# ---------------------------------------------------------------------------------------------------------------------
# Orchestration
# ---------------------------------------------------------------------------------------------------------------------


def _classify(path: str) -> str:
    p = path.lower()
    if p.endswith("/oauth2/v2.0/token"):
        return "entra"
    if "/.well-known/" in p or "/discovery/" in p:
        return "entra"
    return "arm"


def cold_pokes(rounds: int = 3) -> dict[str, Any]:
    emu = EmulatorProcess("--time-scale", "1")
    try:
        env = emu.child_env()
        vault = next(v for v in emu.admin.vaults() if v["name"] == "vault-demo")
        del vault
        from airflow_backup_provider.emulator import VM_ITEM

        emu.admin.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=10**7)
        job_id = _trigger_backup(env)
        cmds = {
            "BackupJobSensor": [PY, __file__, "poke_provider", job_id],
            "PythonSensor + azure-mgmt-recoveryservicesbackup": [PY, __file__, "poke_sdk", job_id],
            "import airflow.sdk (floor)": [PY, __file__, "floor"],
        }
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in cmds}
        requests: dict[str, Counter[str]] = {}
        for _ in range(rounds):  # interleaved
            for name, cmd in cmds.items():
                emu.admin.clear_requests()
                runs[name].append(measured_run(cmd, env))
                requests[name] = Counter(_classify(r["path"]) for r in emu.admin.requests())
        out: dict[str, Any] = {}
        for name, rs in runs.items():
            out[name] = {
                "cpu_s": statistics.median(r["cpu_s"] for r in rs),
                "wall_s": statistics.median(r["wall_s"] for r in rs),
                "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
                "verdict": rs[-1]["verdict"],
                "requests_per_poke": dict(requests[name]),
                "raw": rs,
            }
        return out
    finally:
        emu.stop()


def _trigger_backup(env: dict[str, str]) -> str:
    code = (
        "from airflow_backup_provider.hooks.backup import AzureBackupHook\n"
        "from airflow_backup_provider.emulator import VM_ITEM\n"
        "print(AzureBackupHook().trigger_backup(VM_ITEM.container_name, VM_ITEM.protected_item_name).job_id)\n"
    )
    return subprocess.run(
        [PY, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()[-1]


def triggerer(sizes: list[int], interval: float) -> list[dict[str, Any]]:
    results = []
    for n in sizes:
        emu = EmulatorProcess(
            "--vaults", "10", "--jobs", str(n), "--time-scale", "1", "--max-recorded-requests", "200000"
        )
        try:
            listed = [
                j
                for j in emu.admin.jobs()
                if j.get("status") == "InProgress" and "vm-load-" in j["protected_item_name"]
            ]
            jobs = [
                {"job_id": j["job_id"], "vault": j["vault_name"], "resource_group": j["resource_group"]} for j in listed
            ]
            with tempfile.TemporaryDirectory() as tmp:
                spec = pathlib.Path(tmp) / "spec.json"
                spec.write_text(json.dumps({"jobs": jobs[:n], "base_url": emu.base_url, "ca_file": emu.ca_file}))
                for mode in ("per-job", "batched"):
                    if mode == "per-job" and n > PER_JOB_MAX_WAITS:
                        # At 1,000 waits per-job polling already costs ~850 GETs per interval and 1.4 GB; 5,000 do
                        # not finish inside the bench's time budget. Recorded as not run, not as a number.
                        results.append({"mode": mode, "waits": n, "error": f"not run above {PER_JOB_MAX_WAITS} waits"})
                        continue
                    out = pathlib.Path(tmp) / f"{mode}.json"
                    started = time.perf_counter()
                    try:
                        proc = subprocess.run(  # noqa: PLW1510 - a failed run is recorded, not raised
                            [PY, __file__, "triggerer", mode, str(interval), str(spec), str(out)],
                            env=emu.child_env(),
                            cwd=REPO,
                            capture_output=True,
                            text=True,
                            timeout=240,
                        )
                    except subprocess.TimeoutExpired:
                        results.append({"mode": mode, "waits": n, "error": "did not finish within 240 s"})
                        continue
                    if proc.returncode != 0:
                        results.append({"mode": mode, "waits": n, "error": proc.stderr[-1500:]})
                        continue
                    result = json.loads(out.read_text())
                    result["run_wall_s"] = time.perf_counter() - started
                    done = set(result.pop("finished_ids", []))
                    results.append(result)
                    _PARTIAL.write_text(json.dumps(results, indent=1))
                    # The sampled jobs are finished now: the second mode watches the remaining ones.
                    jobs = [j for j in jobs if j["job_id"] not in done]
                    spec.write_text(json.dumps({"jobs": jobs[:n], "base_url": emu.base_url, "ca_file": emu.ca_file}))
        finally:
            emu.stop()
    return results


def health_check() -> dict[str, Any]:
    emu = EmulatorProcess("--vaults", "10", "--items-per-vault", "200", "--time-scale", "1")
    try:
        vaults = list(emu.admin.vaults())
        with tempfile.TemporaryDirectory() as tmp:
            spec = pathlib.Path(tmp) / "spec.json"
            spec.write_text(json.dumps({"vaults": vaults}))
            out = pathlib.Path(tmp) / "out.json"
            emu.admin.clear_requests()
            subprocess.run([PY, __file__, "health", str(spec), str(out)], env=emu.child_env(), cwd=REPO, check=True)
            result = json.loads(out.read_text())
        result["requests"] = dict(Counter(_classify(r["path"]) for r in emu.admin.requests()))
        return result
    finally:
        emu.stop()


def token_cache_persistence() -> str:
    """Whether azure-identity can persist its token cache *encrypted* here (never the unencrypted fallback)."""
    code = (
        "from azure.identity import TokenCachePersistenceOptions\n"
        "from azure.identity._persistent_cache import _load_persistent_cache\n"
        "_load_persistent_cache(TokenCachePersistenceOptions(name='airflow-backup-bench'), False)\n"
        "print('available')\n"
    )
    proc = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=REPO, check=False)
    if proc.returncode == 0:
        return "encrypted persistence available"
    last = (proc.stderr.strip().splitlines() or ["?"])[-1]
    return f"not available on this machine: {last[:300]}"


TRIGGERER_SIZES = [10, 100, 1000, 5000]
PER_JOB_MAX_WAITS = 1000
TRIGGERER_INTERVAL = 5.0


def run_all() -> dict[str, Any]:
    out: dict[str, Any] = {}
    t = time.perf_counter()
    out["cold_pokes"] = cold_pokes()
    out["cold_pokes_wall_s"] = time.perf_counter() - t
    t = time.perf_counter()
    out["triggerer"] = triggerer(TRIGGERER_SIZES, TRIGGERER_INTERVAL)
    out["triggerer_interval_s"] = TRIGGERER_INTERVAL
    out["triggerer_wall_s"] = time.perf_counter() - t
    t = time.perf_counter()
    out["health_check"] = health_check()
    out["health_check_wall_s"] = time.perf_counter() - t
    out["token_cache_persistence"] = token_cache_persistence()
    out["health_operator_on_branch"] = (REPO / "airflow_backup_provider/operators/health.py").exists()
    return out


def _machine() -> str:
    import platform

    cpu = "?"
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    with contextlib.suppress(OSError):
        mem = pathlib.Path("/proc/meminfo").read_text().splitlines()[0].split(":", 1)[1].strip()
    system = f"{platform.system()} {platform.release()}"
    return f"{system}, {os.cpu_count()} CPUs ({cpu}), {mem} RAM, Python {platform.python_version()}"


def _f(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_markdown(results: dict[str, Any]) -> str:
    fleet = results["fleet"]
    lines = [
        "# BENCHMARKS",
        "",
        "Written by `make bench` (`benchmarks/run.py`, `benchmarks/fleet.py`) on "
        f"{datetime.now().astimezone():%Y-%m-%d %H:%M %Z}.",
        f"Machine: {_machine()}.",
        "The box is shared with other work, so absolute times are noisy; ratios come from one run.",
        f"Whole `make bench`: {_f(results.get('wall_s_total'), 1)} s.",
        "Raw numbers: `benchmarks/results/latest.json`.",
        "",
        "Every measured program is its own process; the emulator",
        "(`python -m airflow_backup_provider.emulator`) runs in another, so CPU and RSS are the client's alone.",
        "",
        "## Cold reschedule poke: process start → verdict (median of interleaved runs)",
        "",
        "Command per run: `python benchmarks/fleet.py poke_provider|poke_sdk|floor <job>`;",
        "CPU = user+sys from `wait4`.",
        "",
        "| program | CPU s | wall s | peak RSS MB | CPU ratio | RSS ratio | requests per poke |",
        "|---|---|---|---|---|---|---|",
    ]
    pokes = fleet["cold_pokes"]
    sdk = pokes["PythonSensor + azure-mgmt-recoveryservicesbackup"]
    for name, r in pokes.items():
        lines.append(
            f"| {name} | {_f(r['cpu_s'])} | {_f(r['wall_s'])} | {_f(r['peak_rss_mb'], 0)} | "
            f"{_f(r['cpu_s'] / sdk['cpu_s'])} | {_f(r['peak_rss_mb'] / sdk['peak_rss_mb'])} | "
            f"{r['requests_per_poke'] or '—'} |"
        )
    lines += [
        "",
        "Ratios are against the SDK route (target: `BackupJobSensor` ≤ 1.0).",
        "",
        f"Per-poke sign-in: azure-identity's encrypted token cache persistence is {fleet['token_cache_persistence']}",
        "(the unencrypted file fallback is never used), so each poke still pays its Entra requests above;",
        "`BackupJobsSensor(job_ids=[...])` pays them once per poke for all its jobs instead of once per job.",
        "",
        "## Requests per tracked job (one backup the emulator runs for 6 s, polled every second)",
        "",
        "| who follows the job | requests |",
        "|---|---|",
        f"| operator (trigger → jobId) | {results['operator_only']['requests']} |",
        f"| reschedule sensor, {results['reschedule_sensor']['pokes']} pokes | "
        f"{results['reschedule_sensor']['requests']} |",
        f"| deferrable, per-job trigger (`batched=False`) | {results['deferrable_trigger']['requests']} |",
        f"| deferrable, batched trigger (default) | {results['batched_trigger']['requests']} |",
        "",
        "A single batched wait lists the vault's running jobs instead of reading its job (1 listing + 1 GET of the",
        "finished job); the saving comes with many waits per vault (next table).",
        "",
        f"## Triggerer: N concurrent waits across 10 vaults, poll interval {_f(fleet['triggerer_interval_s'], 0)} s",
        "",
        "Emulator: `--vaults 10 --jobs N`. One process, one event loop, N `BackupJobTrigger.run()` tasks.",
        "Steady state = 3 intervals after one settling interval. Start-up = all N tasks created until the loop answers",
        "within 100 ms again. Detection latency: a sample of jobs finished through the admin API → event, wall clock.",
        "",
        "| waits | mode | ARM req / interval | busiest second | mean / s | CPU % of one core | RSS MB | start-up s "
        "| max loop stall s | detected | latency median / max s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in fleet["triggerer"]:
        if "error" in r:
            lines.append(f"| {r['waits']} | {r['mode']} | failed: {r['error'][-200:]!r} |||||||||")
            continue
        lines.append(
            f"| {r['waits']} | {r['mode']} | {_f(r['arm_requests_per_interval'], 1)} | {r['busiest_second']} | "
            f"{_f(r['mean_per_second'], 1)} | {_f(r['steady_cpu_pct_of_one_core'], 1)} | {_f(r['rss_mb'], 0)} | "
            f"{_f(r['startup_s'])} | {_f(r['max_loop_stall_s'])} | {r['detected']} | "
            f"{_f(r['detection_latency_s_median'])} / {_f(r['detection_latency_s_max'])} |"
        )
    hc = fleet["health_check"]
    how = (
        "the health-check operator"
        if fleet["health_operator_on_branch"]
        else "the equivalent hook calls (`operators/health.py` is not on this branch yet): list protected items + "
        "list the last 24 h of jobs, per vault"
    )
    lines += [
        "",
        "## Nightly health check: 10 vaults × 200 items",
        "",
        f"Measured with {how}. Emulator: `--vaults 10 --items-per-vault 200`.",
        "",
        "| vaults | items | jobs | requests | wall s |",
        "|---|---|---|---|---|",
        f"| {hc['vaults']} | {hc['items']} | {hc['jobs']} | {hc['requests']} | {_f(hc['wall_s'])} |",
        "",
        "## Latency and core",
        "",
        f"`{json.dumps(results['latency'])}`",
        "",
        f"`{json.dumps(results['core'])}`",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    role, *args = sys.argv[1:]
    {
        "floor": role_floor,
        "poke_provider": role_poke_provider,
        "poke_sdk": role_poke_sdk,
        "triggerer": role_triggerer,
        "health": role_health,
    }[role](*args)  # type: ignore[operator]
