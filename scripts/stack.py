"""``make stack`` / ``make stack-down``: the production shape of Airflow on this machine, against the emulator.

    python scripts/stack.py up     # PostgreSQL, Redis, the emulator, api-server, scheduler, dag-processor,
                                   # 2 triggerers, 2 Celery workers; returns once all are healthy
    python scripts/stack.py down   # stops exactly what `up` started (pid files in .stack/run/)
    python scripts/stack.py status # which of them still run

Everything lives in ``.stack/`` (or ``--root``): data directories, ``logs/<process>.log``, ``run/<process>.pid`` and
``stack.env`` (the settings an ``airflow`` CLI needs to talk to this stack: ``set -a; . .stack/stack.env``).
The servers come from ``scripts/stack/install-servers.sh`` (Debian packages); the Python side (Celery provider,
psycopg2, redis) from the ``prod`` dependency group of ``pyproject.toml``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.e2e.prod_stack import (  # noqa: E402
    AIRFLOW_COMPONENTS,
    SERVERS,
    ProductionStack,
    StackError,
    read_pid_files,
    start_time,
    stop_from_pid_files,
)

DEFAULT_ROOT = REPO / ".stack"
EMULATOR_TIME_SCALE = "60"  # a 20-minute virtual backup takes 20 s


def start_emulator(root: pathlib.Path, timeout: float = 30.0) -> dict[str, str]:
    """The emulator as a process of its own (own session, pid file); returns its ``client_env()`` lines."""
    out_path = root / "run" / "emulator.env"
    log = (root / "logs" / "emulator.log").open("a")
    with out_path.open("w") as out:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "airflow_backup_provider.emulator", "--port", "0", "--log-level", "INFO"),
                *("--ca-file", str(root / "emulator-ca.pem"), "--time-scale", EMULATOR_TIME_SCALE),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=log,
            start_new_session=True,
            cwd=REPO,
        )
    (root / "run" / "emulator.pid").write_text(f"{process.pid} {start_time(process.pid)}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for line in out_path.read_text().splitlines() if "=" in line]
        if len(lines) >= 3:
            return dict(line.split("=", 1) for line in lines)
        if process.poll() is not None:
            raise StackError(f"the emulator exited {process.returncode}; see {root / 'logs' / 'emulator.log'}")
        time.sleep(0.1)
    raise StackError(f"the emulator printed no settings within {timeout:.0f} s")


def up(root: pathlib.Path) -> int:
    if read_pid_files(root / "run"):
        print(f"a stack is already running from {root} (make stack-down first)", file=sys.stderr)
        return 1
    started = time.monotonic()
    shutil.rmtree(root, ignore_errors=True)  # a fresh stack every time: new DB, new secrets, new CA
    root.mkdir(parents=True)
    root.chmod(0o755)  # the postgres user must reach its data directory inside
    (root / "run").mkdir()
    (root / "logs").mkdir()
    stack: ProductionStack | None = None
    try:
        client_env = start_emulator(root)
        stack = ProductionStack(
            root=root,
            client_env=client_env,
            extra_env={"AZURE_BACKUP_EXAMPLE_POKE_INTERVAL": "5"},
        )
        stack.start(dag_ids=("azure_backup_verify_notify", "azure_backup_verify_notify_deferrable"))
    except (StackError, OSError) as error:
        print(f"make stack failed: {error}", file=sys.stderr)
        stop_from_pid_files(root)
        return 1
    elapsed = time.monotonic() - started
    env = stack.env()
    keep = [k for k in env if k.startswith("AIRFLOW") or k in ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE")]
    (root / "stack.env").write_text("".join(f"{k}={shlex.quote(env[k])}\n" for k in sorted(keep)))
    (root / "stack.env").chmod(0o600)  # holds the stack's secrets
    t = stack.timings
    print(f"Airflow production-shape stack healthy in {elapsed:.1f} s", flush=True)
    print(
        f"  servers {t['servers']:.1f} s, db migrate {t['db migrate']:.1f} s, all components healthy at "
        f"{t['healthy']:.1f} s, example DAGs parsed at {t['ready']:.1f} s (after the emulator)"
    )
    print(f"  api-server:  {stack.api_url}  (health: {stack.api_url}/api/v2/monitor/health)")
    print(f"  processes:   {', '.join([*SERVERS, 'emulator', *AIRFLOW_COMPONENTS])}")
    print(f"  PostgreSQL:  127.0.0.1:{stack.pg_port} (db {'airflow'}), Redis: {stack.broker_url}")
    print(f"  logs:        {stack.logs}/<process>.log, task logs in {stack.home / 'logs'}")
    print(f"  airflow CLI: set -a; . {root / 'stack.env'}; set +a; {sys.executable} -m airflow dags list")
    print("  stop with:   make stack-down")
    return 0


def down(root: pathlib.Path) -> int:
    stopped = stop_from_pid_files(root)
    if not stopped:
        print(f"no stack running from {root}")
        return 0
    left = read_pid_files(root / "run")
    print(f"stopped {len(stopped)} process(es): {', '.join(sorted(stopped))}")
    return 1 if left else 0


def status(root: pathlib.Path) -> int:
    pids = read_pid_files(root / "run")
    for name, pid in sorted(pids.items()):
        print(f"{name:14} pid {pid}")
    if not pids:
        print(f"no stack running from {root}")
    return 0 if pids else 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/stack.py", description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("--root", type=pathlib.Path, default=DEFAULT_ROOT, help="state directory (default .stack/)")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    os.environ.pop("AIRFLOW_HOME", None)
    return {"up": up, "down": down, "status": status}[args.action](root)


if __name__ == "__main__":
    sys.exit(main())
