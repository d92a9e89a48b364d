"""``python -m airflow_backup_provider.emulator``: prints the client settings, serves, exits 0 on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import os
import pathlib
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests

from airflow_backup_provider.emulator import CLIENT_ID, CLIENT_SECRET, TENANT_ID, AdminClient


def _stdout_lines(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """Stream stdout lines into a queue (None at EOF); select() cannot see Python's read buffer, a thread can."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in iter(stdout.readline, ""):
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _take(lines: queue.Queue[str | None], count: int, timeout: float = 20.0) -> list[str]:
    collected: list[str] = []
    deadline = time.monotonic() + timeout
    while len(collected) < count:
        try:
            line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(f"CLI printed only {collected!r}") from None
        assert line is not None, f"CLI closed stdout after {collected!r}"
        collected.append(line)
    return collected


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_cli_prints_settings_serves_and_stops(tmp_path: pathlib.Path, stop_signal: signal.Signals) -> None:
    ca_file = tmp_path / "ca.pem"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_backup_provider.emulator", "--port", "0", "--ca-file", str(ca_file),
         "--time-scale", "600", "--token-lifetime", "900"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    stdout = _stdout_lines(process)
    try:
        lines = _take(stdout, 3)
        name, _, value = lines[0].partition("=")
        assert name == "AIRFLOW_CONN_AZURE_BACKUP_DEFAULT"
        connection = json.loads(value)
        assert " " not in value  # one shell word
        assert connection["conn_type"] == "azure_backup"
        assert (connection["login"], connection["password"]) == (CLIENT_ID, CLIENT_SECRET)
        extra = connection["extra"]
        assert extra["tenant_id"] == TENANT_ID
        base_url = extra["resource_manager_endpoint"]
        assert base_url == extra["authority_host"]
        assert base_url.startswith("https://127.0.0.1:")
        bundle = tmp_path / "ca-bundle.pem"
        assert lines[1:] == [f"REQUESTS_CA_BUNDLE={bundle}", f"SSL_CERT_FILE={bundle}"]
        assert ca_file.read_text().startswith("-----BEGIN CERTIFICATE-----")
        assert bundle.read_text().rstrip().endswith(ca_file.read_text().rstrip())  # system CAs, then the emulator's
        assert requests.get(f"{base_url}/_emulator/health", verify=str(bundle), timeout=5).ok

        assert requests.get(f"{base_url}/_emulator/health", verify=str(ca_file), timeout=5).json()["status"] == "ok"
        token = requests.post(
            f"{base_url}/{TENANT_ID}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                  "scope": f"{base_url}/.default"},
            verify=str(ca_file),
            timeout=5,
        ).json()  # fmt: skip
        assert token["expires_in"] == 900

        process.send_signal(stop_signal)
        assert process.wait(timeout=10) == 0
        assert stdout.get(timeout=5) is None  # nothing else was printed
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_cli_export_format(tmp_path: pathlib.Path) -> None:
    ca_file = tmp_path / "ca.pem"
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_backup_provider.emulator", "--ca-file", str(ca_file), "--export"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = _take(_stdout_lines(process), 3)
        assert lines[0].startswith("export AIRFLOW_CONN_AZURE_BACKUP_DEFAULT='{")
        assert lines[1] == f"export REQUESTS_CA_BUNDLE={tmp_path / 'ca-bundle.pem'}"
        # the shell reads the quoted JSON back unchanged
        echoed = subprocess.run(
            ["bash", "-c", f'{lines[0]}; printf %s "$AIRFLOW_CONN_AZURE_BACKUP_DEFAULT"'],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert json.loads(echoed)["conn_type"] == "azure_backup"
        process.terminate()
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_cli_seeds_a_fleet(tmp_path: pathlib.Path) -> None:
    ca_file = tmp_path / "ca.pem"
    process = subprocess.Popen(
        [sys.executable, "-m", "airflow_backup_provider.emulator", "--ca-file", str(ca_file),
         "--vaults", "2", "--items-per-vault", "3", "--health-states"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )  # fmt: skip
    try:
        lines = _take(_stdout_lines(process), 3)
        base_url = json.loads(lines[0].partition("=")[2])["extra"]["resource_manager_endpoint"]
        admin = AdminClient(base_url, ca_file)
        vaults = {v["name"]: v["items"] for v in admin.vaults()}
        assert vaults == {"vault-demo": 3 + 3 + 4, "vault-demo-02": 3}
        process.terminate()
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@pytest.mark.parametrize(
    ("argv", "message"),
    [(["--vaults", "0"], "vaults must be in 1..1000, got 0"), (["--items-per-vault", "-1"], "items_per_vault")],
)
def test_cli_refuses_bad_fleet_sizes(tmp_path: pathlib.Path, argv: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "airflow_backup_provider.emulator", "--ca-file", str(tmp_path / "ca.pem"), *argv],
        check=False, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_cli_busy_port_is_one_clear_line(tmp_path: pathlib.Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "airflow_backup_provider.emulator", "--ca-file", str(tmp_path / "ca.pem"),
             "--port", str(port)],
            check=False, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {port} on 127.0.0.1 is already in use" in lines[0]
    assert "--port 0" in lines[0]
    assert not (tmp_path / "ca.pem").exists()  # nothing written for an emulator that never served
