"""`make demo`: run the example DAG end to end against the bundled Azure Backup emulator and say what happened.

1. start the HTTPS emulator (token endpoint + Backup API) with its throwaway CA;
2. `airflow db migrate` into a scratch AIRFLOW_HOME (.demo/);
3. `airflow dags test azure_backup_verify_notify` with the connection pointing at the emulator;
4. print each task's state, the job id, the job summary and the notification, read back from Airflow's database.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
DEMO_DIR = REPO / ".demo"
DAG_ID = "azure_backup_verify_notify"


def main() -> int:
    from airflow_backup_provider.emulator import Emulator, EmulatorConfig

    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir()
    home = DEMO_DIR / "airflow-home"
    # A "20-minute" VM backup takes 4 s here.
    emulator = Emulator(EmulatorConfig(port=0, time_scale=300.0), ca_file=str(DEMO_DIR / "emulator-ca.pem")).start()
    env = {
        **os.environ,
        **emulator.client_env(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
        "AZURE_BACKUP_EXAMPLE_POKE_INTERVAL": "2",
    }
    print(f"emulator: {emulator.base_url} (CA {emulator.ca_file})", flush=True)
    started = time.time()
    try:
        airflow = str(pathlib.Path(sys.executable).parent / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"airflow db migrate: {time.time() - started:.1f} s", flush=True)
        log_path = DEMO_DIR / "dags-test.log"
        dag_started = time.time()
        with log_path.open("w") as log_file:
            result = subprocess.run(
                [airflow, "dags", "test", DAG_ID], env=env, stdout=log_file, stderr=subprocess.STDOUT, check=False
            )
        print(
            f"airflow dags test {DAG_ID}: exit {result.returncode} in {time.time() - dag_started:.1f} s "
            f"(full log: {log_path.relative_to(REPO)})",
            flush=True,
        )
        report = subprocess.run(
            [sys.executable, __file__, "--report"], env=env, check=True, capture_output=True, text=True
        )
        print(report.stdout, end="")
        arm = [r for r in emulator.requests if "/subscriptions/" in r.path.lower()]
        tokens = [r for r in emulator.requests if r.path.endswith("/oauth2/v2.0/token")]
        ours = [j for j in emulator.jobs if j.start_time.timestamp() >= started]
        print(
            f"\nemulator saw {len(arm)} ARM requests and {len(tokens)} token requests; jobs started by the demo: "
            + ", ".join(f"{j.job_id} ({j.operation} of {j.protected_item_name}: {j.status})" for j in ours)
        )
        return result.returncode
    finally:
        emulator.stop()


def report() -> None:
    """Read the last run of the DAG back from Airflow's database (runs with the demo's AIRFLOW_HOME)."""
    from airflow.models import DagRun, TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        run = (
            session.query(DagRun).filter(DagRun.dag_id == DAG_ID).order_by(DagRun.id.desc()).first()  # type: ignore[attr-defined]
        )
        if run is None:
            print("no DAG run found")
            return
        print(f"\nDAG run {run.run_id}: {run.state}")
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == DAG_ID, TaskInstance.run_id == run.run_id)
        for ti in sorted(tis, key=lambda t: t.start_date or t.end_date or run.start_date):
            print(f"  {ti.task_id:<16} {ti.state}")
        xcoms = _xcoms(session, run.run_id)
    print(f"\njob id (XCom trigger_backup.job_id): {xcoms.get(('trigger_backup', 'job_id'))}")
    print("job summary (XCom wait_for_backup.return_value):")
    print(json.dumps(xcoms.get(("wait_for_backup", "return_value")), indent=2))
    print(f"verification: {json.dumps(xcoms.get(('verify', 'return_value')))}")
    print("notification:")
    print(xcoms.get(("notify", "return_value")))


def _xcoms(session: object, run_id: str) -> dict[tuple[str, str], object]:
    try:  # Airflow 3
        from airflow.models.xcom import XComModel as XComRow
    except ImportError:  # Airflow 2
        from airflow.models.xcom import BaseXCom as XComRow  # type: ignore[assignment,no-redef]
    rows = session.query(XComRow).filter(XComRow.dag_id == DAG_ID, XComRow.run_id == run_id)  # type: ignore[attr-defined]
    out: dict[tuple[str, str], object] = {}
    for row in rows:
        value = row.value
        if isinstance(value, (bytes, str)):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        out[(row.task_id, row.key)] = value
    return out


if __name__ == "__main__":
    if "--report" in sys.argv:
        report()
    else:
        sys.exit(main())
