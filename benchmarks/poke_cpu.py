"""CPU and memory of one cold reschedule poke, before and after a change. Numbers, never assertions.

A reschedule-mode sensor pays its imports on every poke: each poke is a fresh task process. This script starts the
emulator once, then runs ``--runs`` fresh interpreters per tree, each importing
:mod:`airflow_backup_provider.sensors.backup` and running one ``BackupJobSensor.poke()`` of a running job, and
reports per tree the median process CPU (user + system, startup included), the CPU of the sensor import alone, the
peak RSS and whether the async stack (aiohttp, azure.identity.aio, yarl) was loaded.

The baseline tree is ``git archive <rev>`` of the package in a temporary directory, put first on ``PYTHONPATH``
(it shadows the editable install); the current tree is this checkout.

Usage: ``python benchmarks/poke_cpu.py [--baseline main] [--runs 7]``
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tarfile
import tempfile
from typing import Any

REPO = pathlib.Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, time
started = time.process_time()
from airflow_backup_provider.sensors.backup import BackupJobSensor
imported = time.process_time()
sensor = BackupJobSensor(task_id="poke", job_id=sys.argv[1], mode="reschedule")
done = sensor.poke({})
finished = time.process_time()
print(json.dumps({
    "module": sys.modules["airflow_backup_provider"].__file__,
    "done": bool(done),
    "process_cpu_s": finished,
    "sensor_import_cpu_s": imported - started,
    "poke_cpu_s": finished - imported,
    "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "async_stack_loaded": sorted(m for m in ("aiohttp", "yarl", "azure.identity.aio") if m in sys.modules),
}))
"""


def export_tree(rev: str, into: pathlib.Path) -> pathlib.Path:
    """The package as it is at ``rev``, extracted under ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    archive = into / "tree.tar"
    with archive.open("wb") as out:
        subprocess.run(["git", "-C", str(REPO), "archive", rev, "airflow_backup_provider"], stdout=out, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into


def measure(tree: pathlib.Path, job_id: str, env: dict[str, str], runs: int) -> dict[str, Any]:
    samples = []
    for _ in range(runs):
        child_env = {**env, "PYTHONPATH": str(tree)}
        # cwd outside any checkout: ``python -c`` puts the cwd first on sys.path, ahead of PYTHONPATH
        result = subprocess.run(
            [sys.executable, "-c", CHILD, job_id],
            env=child_env,
            cwd=tempfile.gettempdir(),
            capture_output=True,
            text=True,
            check=True,
        )
        samples.append(json.loads(result.stdout.strip().splitlines()[-1]))
    assert all(s["module"].startswith(str(tree)) for s in samples), samples[0]["module"]

    def median(key: str) -> float:
        return round(statistics.median(s[key] for s in samples), 3)

    return {
        "process_cpu_s": median("process_cpu_s"),
        "sensor_import_cpu_s": median("sensor_import_cpu_s"),
        "poke_cpu_s": median("poke_cpu_s"),
        "max_rss_mib": median("max_rss_mib"),
        "async_stack_loaded": samples[0]["async_stack_loaded"],
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default="main", help="git revision of the 'before' tree (default: main)")
    parser.add_argument("--runs", type=int, default=7, help="fresh processes per tree (default: 7)")
    args = parser.parse_args()

    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="airflow-backup-bench-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow_backup_provider.emulator import VM_ITEM, Emulator, EmulatorConfig

    with tempfile.TemporaryDirectory() as tmp:
        emulator = Emulator(EmulatorConfig(), ca_file=f"{tmp}/ca.pem").start()
        try:
            env = {**os.environ, **emulator.client_env()}
            # A job that stays running for the whole measurement: every poke reads it once and returns False.
            emulator.set_item_behavior(VM_ITEM.protected_item_name, outcome="Completed", duration_seconds=86400.0)
            trigger = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    "import sys; from airflow_backup_provider.hooks.backup import AzureBackupHook; "
                    "print(AzureBackupHook().trigger_backup(sys.argv[1], sys.argv[2]).job_id)",
                    VM_ITEM.container_name,
                    VM_ITEM.protected_item_name,
                ],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            job_id = trigger.stdout.strip().splitlines()[-1]
            before = measure(export_tree(args.baseline, pathlib.Path(tmp) / "before"), job_id, env, args.runs)
            after = measure(REPO, job_id, env, args.runs)
        finally:
            emulator.stop()
    report = {
        "baseline": args.baseline,
        "before": before,
        "after": after,
        "ratio_process_cpu": round(after["process_cpu_s"] / before["process_cpu_s"], 3),
        "ratio_sensor_import_cpu": round(after["sensor_import_cpu_s"] / before["sensor_import_cpu_s"], 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
