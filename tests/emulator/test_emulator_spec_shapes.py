"""Fidelity against the spec: every key in the x-ms-examples is present in the emulator's bodies, and every key the
emulator emits is a property that tests/spec/bms.json defines for that (discriminated) type."""

from __future__ import annotations

import json
import pathlib
import re
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import pytest

from airflow_backup_provider.emulator import SEEDED_ITEMS, VM_ITEM, Emulator, SeededItem

from .conftest import Arm

SPEC_DIR = pathlib.Path(__file__).resolve().parents[1] / "spec"
RESOURCE_KEYS = {"id", "name", "type"}  # ProxyResource fields live in common-types (not copied)


@cache
def _definitions() -> dict[str, Any]:
    definitions: dict[str, Any] = json.loads((SPEC_DIR / "bms.json").read_text())["definitions"]
    return definitions


def _example(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SPEC_DIR / "examples" / name).read_text())
    return data


# ---- "example keys ⊆ emulator keys" -------------------------------------------------------------------------------


def _shape(example: Any) -> Any:
    """Keys the example requires; for lists, the keys all example elements share (recursively)."""
    if isinstance(example, dict):
        return {key: _shape(value) for key, value in example.items()}
    if isinstance(example, list) and example and all(isinstance(e, dict) for e in example):
        shapes = [_shape(e) for e in example]
        common = shapes[0]
        for other in shapes[1:]:
            common = _intersect(common, other)
        return [common]
    return None


def _intersect(left: Any, right: Any) -> Any:
    if isinstance(left, dict) and isinstance(right, dict):
        return {key: _intersect(left[key], right[key]) for key in left.keys() & right.keys()}
    if isinstance(left, list) and isinstance(right, list):
        return [_intersect(left[0], right[0])]
    return None


def _assert_has_shape(actual: Any, shape: Any, where: str = "$") -> None:
    if isinstance(shape, dict):
        assert isinstance(actual, dict), f"{where}: expected an object, got {actual!r}"
        missing = set(shape) - set(actual)
        assert not missing, f"{where}: missing keys {sorted(missing)}"
        for key, sub in shape.items():
            if sub is not None and actual[key] is not None:
                _assert_has_shape(actual[key], sub, f"{where}.{key}")
    elif isinstance(shape, list):
        assert isinstance(actual, list), f"{where}: expected a list"
        for index, element in enumerate(actual):
            _assert_has_shape(element, shape[0], f"{where}[{index}]")


# ---- "emulator keys ⊆ spec properties" -------------------------------------------------------------------------------


def _properties(definition_name: str) -> dict[str, Any]:
    definition = _definitions()[definition_name]
    props: dict[str, Any] = {}
    for parent in definition.get("allOf", []):
        ref = parent.get("$ref", "")
        if ref.startswith("#/definitions/"):
            props.update(_properties(ref.split("/")[-1]))
    props.update(definition.get("properties", {}))
    return props


def _subtype(definition_name: str, value: dict[str, Any]) -> str:
    """Follow discriminators down (several levels) to the definition the value declares."""
    definition = _definitions()[definition_name]
    discriminator = definition.get("discriminator")
    if discriminator is None:
        for parent in definition.get("allOf", []):
            ref = parent.get("$ref", "")
            if ref.startswith("#/definitions/") and _definitions()[ref.split("/")[-1]].get("discriminator"):
                discriminator = _definitions()[ref.split("/")[-1]]["discriminator"]
    if discriminator is None or discriminator not in value:
        return definition_name
    wanted = value[discriminator]
    for name, candidate in _definitions().items():
        if candidate.get("x-ms-discriminator-value") == wanted and _inherits(name, definition_name):
            return name
    raise AssertionError(f"no definition below {definition_name} for {discriminator}={wanted!r}")


def _inherits(name: str, ancestor: str) -> bool:
    if name == ancestor:
        return True
    for parent in _definitions()[name].get("allOf", []):
        ref = parent.get("$ref", "")
        if ref.startswith("#/definitions/") and _inherits(ref.split("/")[-1], ancestor):
            return True
    return False


def _assert_within_spec(value: Any, definition_name: str, where: str = "$") -> None:
    if not isinstance(value, dict):
        return
    concrete = _subtype(definition_name, value)
    props = _properties(concrete)
    allowed = set(props) | (RESOURCE_KEYS if definition_name.endswith("Resource") else set())
    unknown = set(value) - allowed
    assert not unknown, f"{where} ({concrete}): keys not in bms.json: {sorted(unknown)}"
    for key, schema in props.items():
        if key not in value or value[key] is None:
            continue
        ref = schema.get("$ref", "")
        items_ref = (schema.get("items") or {}).get("$ref", "")
        if ref.startswith("#/definitions/") and isinstance(value[key], dict):
            _assert_within_spec(value[key], ref.split("/")[-1], f"{where}.{key}")
        elif items_ref.startswith("#/definitions/") and isinstance(value[key], list):
            for index, element in enumerate(value[key]):
                _assert_within_spec(element, items_ref.split("/")[-1], f"{where}.{key}[{index}]")


# ---- tests -----------------------------------------------------------------------------------------------------------


def test_job_details_match_get_job_details_example(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.configure(time_scale=1.0)  # keep the job InProgress, like the example
    job_id = arm.follow_operation(arm.trigger_backup(VM_ITEM))["properties"]["jobId"]
    job = arm.job(job_id)
    _assert_has_shape(job, _shape(_example("GetJobDetails.json")["responses"]["200"]["body"]))
    _assert_within_spec(job, "JobResource")


def test_every_job_is_within_the_spec(arm: Arm, azure_backup_emulator: Emulator) -> None:
    for item in SEEDED_ITEMS:
        azure_backup_emulator.set_item_behavior(item.protected_item_name, "Failed", duration_seconds=10)
        arm.follow_operation(arm.trigger_backup(item))
    azure_backup_emulator.configure(job_page_size=4)
    body = arm.get("/backupJobs").json()
    paged_example = _example("ListJobsWithStartTimeAndEndTimeFilters.json")["responses"]["200"]["body"]
    assert set(paged_example) <= set(body)  # value + nextLink
    # The examples only show IaaS VM jobs; compare those (the others are checked against bms.json below).
    vm_jobs = [j for j in body["value"] if j["properties"]["jobType"] == "AzureIaaSVMJob"]
    assert vm_jobs
    _assert_has_shape({"value": vm_jobs, "nextLink": body["nextLink"]}, _shape(paged_example))
    _assert_has_shape({"value": vm_jobs}, _shape(_example("ListJobs.json")["responses"]["200"]["body"]))
    for job in arm.get("/backupJobs", params={"$filter": ""}).json()["value"]:
        _assert_within_spec(job, "JobResource")
    for job in azure_backup_emulator.jobs:
        _assert_within_spec(arm.wait_for_job(job.job_id), "JobResource")


def test_operation_status_matches_example(arm: Arm) -> None:
    accepted = arm.trigger_backup(VM_ITEM)
    example = _example("TriggerBackup_Post.json")["responses"]["202"]["headers"]
    assert set(example) <= set(accepted.headers)
    for header in ("Azure-AsyncOperation", "Location"):
        ours, theirs = urlsplit(accepted.headers[header]), urlsplit(example[header])
        assert (
            re.sub(r"/[^/]+$", "", ours.path).rsplit("/", 1)[1] == re.sub(r"/[^/]+$", "", theirs.path).rsplit("/", 1)[1]
        )
        assert ours.query == theirs.query
    status = arm.follow_operation(accepted)
    _assert_has_shape(status, _shape(_example("ProtectedItemOperationStatus.json")["responses"]["200"]["body"]))
    _assert_within_spec(status, "OperationStatus")
    assert arm.get(accepted.headers["Location"]).status_code == 204  # ProtectedItemOperationResults.json "204"


def test_operation_results_202_matches_example(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.configure(operation_polls_in_progress=2)
    accepted = arm.trigger_backup(VM_ITEM)
    pending = arm.get(accepted.headers["Location"])
    assert pending.status_code == 202
    assert set(_example("ProtectedItemOperationResults.json")["responses"]["202"]["headers"]) <= set(pending.headers)


def test_cancel_matches_examples(arm: Arm, azure_backup_emulator: Emulator) -> None:
    azure_backup_emulator.configure(time_scale=1.0)
    job_id = arm.follow_operation(arm.trigger_backup(VM_ITEM))["properties"]["jobId"]
    accepted = arm.post(f"/backupJobs/{job_id}/cancel")
    assert accepted.status_code == 202
    assert set(_example("TriggerCancelJob.json")["responses"]["202"]["headers"]) <= set(accepted.headers)
    pending = arm.get(accepted.headers["Location"])
    assert pending.status_code == 202
    assert set(_example("CancelJobOperationResult.json")["responses"]["202"]["headers"]) <= set(pending.headers)


@pytest.mark.parametrize("item", SEEDED_ITEMS, ids=lambda i: i.workload)
def test_protected_items_within_spec(arm: Arm, item: SeededItem) -> None:
    body = arm.get(arm.item_path(item)).json()
    _assert_within_spec(body, "ProtectedItemResource")
    if item.workload == "VM":
        _assert_has_shape(body, _shape(_example("ClassicCompute_ProtectedItem_Get.json")["responses"]["200"]["body"]))
        assert body["properties"]["protectedItemType"] == "Microsoft.Compute/virtualMachines"
    points = arm.get(arm.item_path(item) + "/recoveryPoints").json()
    for point in points["value"]:
        _assert_within_spec(point, "RecoveryPointResource")
    if item.workload == "VM":
        _assert_has_shape(points, _shape(_example("RecoveryPoints_List.json")["responses"]["200"]["body"]))


def test_protected_items_list_matches_example(arm: Arm) -> None:
    example = _example("BackupProtectedItems_List.json")
    body = arm.get("/backupProtectedItems", params={"$filter": example["parameters"]["$filter"]}).json()
    assert len(body["value"]) == 1
    _assert_has_shape(body, _shape(example["responses"]["200"]["body"]))


def test_restore_202_matches_examples(arm: Arm) -> None:
    point = arm.get(arm.item_path(VM_ITEM) + "/recoveryPoints").json()["value"][0]["name"]
    example = _example("TriggerRestore_RestoreDisks_IaasVMRestoreRequest.json")
    request = example["parameters"]["parameters"]
    accepted = arm.post(arm.item_path(VM_ITEM) + f"/recoveryPoints/{point}/restore", json=request)
    assert accepted.status_code == 202
    assert set(example["responses"]["202"]["headers"]) <= set(accepted.headers)
    alr = _example("TriggerRestore_ALR_IaasVMRestoreRequest.json")
    assert (
        urlsplit(accepted.headers["Location"]).query == urlsplit(alr["responses"]["202"]["headers"]["Location"]).query
    )
