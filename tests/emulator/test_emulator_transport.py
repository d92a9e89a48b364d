"""Transport: TLS trust through the throwaway CA, keep-alive, sync and async HTTP clients, admin API."""

from __future__ import annotations

import http.client
import pathlib
import socket
import ssl
import threading

import aiohttp
import certifi
import pytest
import requests
from cryptography import x509

from airflow_backup_provider.emulator import VM_ITEM, AdminClient, Emulator, EmulatorConfig, Fault


def test_requests_trusts_emulator_through_ca_file(azure_backup_emulator: Emulator) -> None:
    response = requests.get(f"{azure_backup_emulator.base_url}/_emulator/health", verify=azure_backup_emulator.ca_file)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_requests_uses_requests_ca_bundle_env(azure_backup_emulator: Emulator) -> None:
    # The fixture exported REQUESTS_CA_BUNDLE; verify=True (the default) must pick it up.
    response = requests.get(f"{azure_backup_emulator.base_url}/_emulator/health")
    assert response.status_code == 200


def test_without_the_ca_verification_fails(azure_backup_emulator: Emulator) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{azure_backup_emulator.base_url}/_emulator/health", verify=certifi.where())
    context = ssl.create_default_context(cafile=certifi.where())
    with (
        socket.create_connection(("127.0.0.1", azure_backup_emulator.port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")
    # the server survives failed handshakes
    assert requests.get(f"{azure_backup_emulator.base_url}/_emulator/health", verify=azure_backup_emulator.ca_file).ok


def test_certificate_names_ipv4_ipv6_and_localhost(azure_backup_emulator: Emulator) -> None:
    pem = ssl.get_server_certificate(("127.0.0.1", azure_backup_emulator.port))
    cert = x509.load_pem_x509_certificate(pem.encode())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in sans.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    localhost_url = azure_backup_emulator.base_url.replace("127.0.0.1", "localhost")
    assert requests.get(f"{localhost_url}/_emulator/health", verify=azure_backup_emulator.ca_file).ok


def test_keep_alive_connection_is_reused(azure_backup_emulator: Emulator) -> None:
    connection = http.client.HTTPSConnection(
        "127.0.0.1", azure_backup_emulator.port, context=azure_backup_emulator.ssl_context(), timeout=5
    )
    try:
        connection.request("GET", "/_emulator/health")
        first = connection.getresponse()
        body = first.read()
        assert first.getheader("Content-Length") == str(len(body))
        sock = connection.sock
        for path in ("/_emulator/health", "/subscriptions/x?api-version=1", "/_emulator/jobs"):
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            assert not response.will_close
            assert connection.sock is sock  # same TLS connection, HTTP/1.1 keep-alive
    finally:
        connection.close()


async def _aiohttp_get_vault(
    emulator: Emulator, token: str, ssl_param: ssl.SSLContext | bool
) -> tuple[int, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.get(
        emulator.vault_url, params={"api-version": "2026-10-01"}, headers={"Authorization": f"Bearer {token}"},
        ssl=ssl_param,
    ) as response:  # fmt: skip
        body = await response.json()
        return response.status, body


@pytest.mark.asyncio
async def test_aiohttp_client_with_explicit_ssl_context(azure_backup_emulator: Emulator) -> None:
    token = azure_backup_emulator.issue_token()
    status, body = await _aiohttp_get_vault(azure_backup_emulator, token, azure_backup_emulator.ssl_context())
    assert status == 200
    assert body["type"] == "Microsoft.RecoveryServices/vaults"


@pytest.mark.asyncio
async def test_aiohttp_client_with_default_context(azure_backup_emulator: Emulator) -> None:
    # ssl=True → aiohttp's default verifying context (SSL_CERT_FILE, or the plugin's added trust when aiohttp was
    # imported before the env var was set).
    token = azure_backup_emulator.issue_token()
    status, _ = await _aiohttp_get_vault(azure_backup_emulator, token, True)
    assert status == 200


def test_admin_client_round_trip(azure_backup_emulator: Emulator) -> None:
    admin = AdminClient(azure_backup_emulator.base_url, azure_backup_emulator.ca_file)
    assert admin.health()["status"] == "ok"
    fault_id = admin.add_fault(Fault("throttle", count=2, method="GET"))
    assert [f["id"] for f in admin.faults()] == [fault_id]
    assert azure_backup_emulator.faults[0]["remaining"] == 2
    admin.clear_faults()
    assert admin.faults() == []
    admin.set_item_behavior(VM_ITEM.protected_item_name, "Failed", 30)
    assert admin.configure(job_page_size=3)["job_page_size"] == 3
    assert azure_backup_emulator.config.job_page_size == 3
    assert len(admin.jobs()) == 9  # seeded history
    admin.reset()
    assert azure_backup_emulator.config.job_page_size == 200
    assert admin.requests() == []  # admin calls are not recorded


def test_admin_rejects_bad_input(azure_backup_emulator: Emulator) -> None:
    base = f"{azure_backup_emulator.base_url}/_emulator"
    ca = azure_backup_emulator.ca_file
    assert requests.post(f"{base}/faults", json={"kind": "nope"}, verify=ca).status_code == 400
    assert requests.post(f"{base}/faults", json={"kind": "throttle", "bogus": 1}, verify=ca).status_code == 400
    behavior = {"protected_item_name": "VM;nope", "outcome": "Completed"}
    assert requests.post(f"{base}/items/behavior", json=behavior, verify=ca).status_code == 404
    behavior = {"protected_item_name": VM_ITEM.protected_item_name, "outcome": "Exploded"}
    assert requests.post(f"{base}/items/behavior", json=behavior, verify=ca).status_code == 400
    assert requests.post(f"{base}/config", json={"port": 1}, verify=ca).status_code == 400
    assert requests.get(f"{base}/nothing", verify=ca).status_code == 404


def test_standalone_emulator_context_manager(tmp_path: pathlib.Path) -> None:
    ca_file = tmp_path / "nested" / "ca.pem"
    session = requests.Session()
    with Emulator(EmulatorConfig(time_scale=1000), ca_file=ca_file) as emu:
        assert emu.ca_file == str(ca_file)
        assert session.get(f"{emu.base_url}/_emulator/health", verify=emu.ca_file).ok
        assert emu.connection_extra()["resource_manager_endpoint"] == emu.base_url
    assert not emu.running
    # neither new connections nor the pooled keep-alive one get answers after stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(f"{emu.base_url}/_emulator/health", verify=str(ca_file), timeout=2)
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{emu.base_url}/_emulator/health", verify=str(ca_file), timeout=2)


def test_concurrent_clients(azure_backup_emulator: Emulator) -> None:
    """Many threads at once: every answer is a well-formed API answer (the state lock holds)."""
    azure_backup_emulator.configure(time_scale=1.0)  # the one backup stays in progress during the test
    token = azure_backup_emulator.issue_token()
    headers = {"Authorization": f"Bearer {token}"}
    params = {"api-version": "2026-10-01"}
    statuses: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        session = requests.Session()
        for index in range(15):
            if index % 5 == 0:
                response = session.post(
                    azure_backup_emulator.item_url(VM_ITEM) + "/backup",
                    params=params,
                    headers=headers,
                    json={"properties": {"objectType": "IaasVMBackupRequest"}},
                    verify=azure_backup_emulator.ca_file,
                )
            else:
                response = session.get(
                    azure_backup_emulator.vault_url + "/backupJobs",
                    params=params,
                    headers=headers,
                    verify=azure_backup_emulator.ca_file,
                )
            with lock:
                statuses.append(response.status_code)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(statuses) == 8 * 15
    assert set(statuses) <= {200, 202, 400}
    assert statuses.count(202) == 1  # exactly one backup wins, the others see UserErrorBackupOperationInProgress


def test_client_env_names_a_bundle_of_system_and_emulator_cas(azure_backup_emulator: Emulator) -> None:
    emu = azure_backup_emulator
    env = emu.client_env()
    assert env["REQUESTS_CA_BUNDLE"] == env["SSL_CERT_FILE"] == emu.ca_bundle != emu.ca_file
    bundle = pathlib.Path(emu.ca_bundle).read_text()
    system = ssl.get_default_verify_paths().openssl_cafile
    system_pem = (
        pathlib.Path(system).read_text()
        if pathlib.Path(system).is_file()
        else pathlib.Path(certifi.where()).read_text()
    )
    assert bundle.startswith(system_pem.rstrip())  # every system CA, unchanged
    assert bundle.rstrip().endswith(pathlib.Path(emu.ca_file).read_text().rstrip())
    context = ssl.create_default_context(cafile=emu.ca_bundle)
    assert context.cert_store_stats()["x509_ca"] > 10  # the public roots are still trusted
    assert requests.get(f"{emu.base_url}/_emulator/health", verify=emu.ca_bundle).ok


def test_busy_port_raises_a_clear_oserror(azure_backup_emulator: Emulator, tmp_path: pathlib.Path) -> None:
    with pytest.raises(OSError, match=rf"port {azure_backup_emulator.port} on 127.0.0.1 is already in use") as caught:
        Emulator(EmulatorConfig(port=azure_backup_emulator.port), ca_file=tmp_path / "ca.pem").start()
    assert "--port 0" in str(caught.value)
    with Emulator(EmulatorConfig(port=0), ca_file=tmp_path / "ca.pem") as free:
        assert free.port != azure_backup_emulator.port
