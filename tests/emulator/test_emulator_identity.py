"""Entra ID token endpoint with azure-identity (sync and async), error shapes, and secret hygiene."""

from __future__ import annotations

import json

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential

from airflow_backup_provider.emulator import CLIENT_ID, CLIENT_SECRET, TENANT_ID, Emulator

from .conftest import fetch_token


def _credential(emu: Emulator, secret: str = CLIENT_SECRET, tenant: str = TENANT_ID) -> ClientSecretCredential:
    return ClientSecretCredential(tenant, CLIENT_ID, secret, authority=emu.base_url, disable_instance_discovery=True)


def _assert_secret_never_recorded(emu: Emulator) -> None:
    dump = json.dumps([r.to_dict() for r in emu.requests])
    assert CLIENT_SECRET not in dump
    assert "wrong-secret" not in dump


def test_sync_credential_gets_token(azure_backup_emulator: Emulator) -> None:
    emu = azure_backup_emulator
    token = _credential(emu).get_token(emu.base_url + "/.default")
    assert token.token
    assert token.expires_on > 0
    paths = [(r.method, r.path) for r in emu.requests]
    assert ("POST", f"/{TENANT_ID}/oauth2/v2.0/token") in paths
    # with instance discovery disabled MSAL only asks for the OIDC metadata and the token
    assert set(paths) <= {
        ("GET", f"/{TENANT_ID}/v2.0/.well-known/openid-configuration"),
        ("POST", f"/{TENANT_ID}/oauth2/v2.0/token"),
    }
    token_request = next(r for r in emu.requests if r.method == "POST")
    assert token_request.body["client_secret"] == "<redacted>"
    assert token_request.body["grant_type"] == "client_credentials"
    _assert_secret_never_recorded(emu)
    # the token opens ARM
    response = requests.get(emu.vault_url, params={"api-version": "2026-10-01"},
                            headers={"Authorization": f"Bearer {token.token}"}, verify=emu.ca_file)  # fmt: skip
    assert response.status_code == 200


def test_wrong_secret_raises_client_authentication_error(azure_backup_emulator: Emulator) -> None:
    with pytest.raises(ClientAuthenticationError) as info:
        _credential(azure_backup_emulator, secret="wrong-secret").get_token(
            azure_backup_emulator.base_url + "/.default"
        )
    assert "AADSTS7000215" in str(info.value)
    _assert_secret_never_recorded(azure_backup_emulator)


def test_token_endpoint_error_shapes(azure_backup_emulator: Emulator) -> None:
    emu = azure_backup_emulator
    wrong = fetch_token(emu, secret="wrong-secret")
    assert wrong.status_code == 401
    body = wrong.json()
    assert body["error"] == "invalid_client"
    assert body["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert body["error_codes"] == [7000215]

    def post(tenant: str = TENANT_ID, **form: str) -> requests.Response:
        data = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "scope": f"{emu.base_url}/.default", **form}  # fmt: skip
        return requests.post(f"{emu.base_url}/{tenant}/oauth2/v2.0/token", data=data, verify=emu.ca_file)

    unknown_client = post(client_id="11111111-1111-1111-1111-111111111111")
    assert unknown_client.status_code == 400
    assert unknown_client.json()["error_codes"] == [700016]
    unknown_tenant = post(tenant="22222222-2222-2222-2222-222222222222")
    assert unknown_tenant.status_code == 400
    assert "AADSTS90002" in unknown_tenant.json()["error_description"]
    for foreign in (
        "https://graph.microsoft.com/.default",
        "https://management.azure.com.example.org/.default",
        "https://management.azure.com///.default",
        "https://vault.azure.net/.default",
        "https://127.0.0.1:1/.default",
    ):
        bad_resource = post(scope=foreign)
        assert (bad_resource.status_code, bad_resource.json()["error"]) == (400, "invalid_resource"), foreign
        assert "AADSTS500011" in bad_resource.json()["error_description"]
    assert post(scope=f"{emu.base_url}/user_impersonation").json()["error"] == "invalid_scope"
    assert post(grant_type="password").json()["error"] == "unsupported_grant_type"
    # a double slash and a claims parameter are accepted
    ok = post(scope=f"{emu.base_url}//.default", claims='{"access_token":{"xms_cc":{"values":["cp1"]}}}')
    assert ok.status_code == 200
    assert ok.json()["token_type"] == "Bearer"
    assert ok.json()["expires_in"] == 3600
    oidc = requests.get(f"{emu.base_url}/{TENANT_ID}/v2.0/.well-known/openid-configuration", verify=emu.ca_file)
    assert oidc.json()["token_endpoint"] == f"{emu.base_url}/{TENANT_ID}/oauth2/v2.0/token"
    assert oidc.json()["issuer"] == f"{emu.base_url}/{TENANT_ID}/v2.0"
    unknown_oidc = requests.get(f"{emu.base_url}/common/v2.0/.well-known/openid-configuration", verify=emu.ca_file)
    assert unknown_oidc.status_code == 400
    _assert_secret_never_recorded(emu)


@pytest.mark.parametrize(
    "resource",
    [
        "{base}",
        "{base}/",
        "https://management.azure.com",
        "https://management.azure.com/",
        "https://management.core.windows.net",
        "https://management.core.windows.net/",
        "HTTPS://Management.Azure.com/",
    ],
)
def test_token_endpoint_accepts_the_audiences_arm_accepts(azure_backup_emulator: Emulator, resource: str) -> None:
    emu = azure_backup_emulator
    scope = resource.format(base=emu.base_url) + "/.default"
    data = {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "scope": scope}
    response = requests.post(f"{emu.base_url}/{TENANT_ID}/oauth2/v2.0/token", data=data, verify=emu.ca_file)
    assert response.status_code == 200, response.text
    token = response.json()["access_token"]
    vault = requests.get(
        emu.vault_url,
        params={"api-version": "2026-10-01"},
        headers={"Authorization": f"Bearer {token}"},
        verify=emu.ca_file,
        timeout=10,
    )
    assert vault.status_code == 200, vault.text


def test_unknown_tenant_fails_in_azure_identity(azure_backup_emulator: Emulator) -> None:
    with pytest.raises(ClientAuthenticationError):
        _credential(azure_backup_emulator, tenant="33333333-3333-3333-3333-333333333333").get_token(
            azure_backup_emulator.base_url + "/.default"
        )


def test_token_lifetime_is_configurable(azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.configure(token_lifetime=120)
    assert fetch_token(azure_backup_emulator).json()["expires_in"] == 120


@pytest.mark.asyncio
async def test_async_credential_gets_token(azure_backup_emulator: Emulator) -> None:
    emu = azure_backup_emulator
    async with AsyncClientSecretCredential(TENANT_ID, CLIENT_ID, CLIENT_SECRET, authority=emu.base_url) as credential:
        token = await credential.get_token(emu.base_url + "/.default")
    assert token.token
    async with AsyncClientSecretCredential(TENANT_ID, CLIENT_ID, "wrong-secret", authority=emu.base_url) as credential:
        with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
            await credential.get_token(emu.base_url + "/.default")
    _assert_secret_never_recorded(emu)
