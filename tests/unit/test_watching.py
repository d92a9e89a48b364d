"""The sans-I/O rules of batched watching, driven like every flow: scripted outcomes, a fake clock, no network."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from airflow_backup_provider.core.watching import (
    JITTER,
    START_SKEW,
    VaultPoll,
    WatchedJob,
    jobs_needing_own_read,
    listing_filter,
    next_poll_delay,
    poll_vault,
    running_in_listing,
    throttle_delay,
)
from airflow_backup_provider.exceptions import AzureBackupNotFoundError
from airflow_backup_provider.protocol import BackupApi, RetryPolicy, Send
from tests.unit.conftest import ARM, VAULT, VAULT_PATH, Driver, FakeClock, arm_error, resp

NOW = datetime(2026, 12, 1, 20, 0, 0, tzinfo=timezone.utc)
API = BackupApi(ARM, policy=RetryPolicy(max_attempts=2, backoff_base=1.0))


def body(job_id: str, status: str = "InProgress", start: datetime | None = NOW) -> dict[str, Any]:
    props: dict[str, Any] = {"status": status, "jobType": "AzureIaaSVMJob", "entityFriendlyName": "vm1"}
    if start is not None:
        props["startTime"] = start.isoformat()
    return {"id": f"{VAULT_PATH}/backupJobs/{job_id}", "name": job_id, "properties": props}


def page(*jobs: dict[str, Any], next_link: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"value": list(jobs)}
    if next_link:
        out["nextLink"] = next_link
    return out


def watch(*ids: str, start: datetime | None = None) -> dict[str, WatchedJob]:
    return {i: WatchedJob(i, start_time=start) for i in ids}


def kind(send: Send) -> str:
    path = urlsplit(send.request.url).path
    if path.endswith("/backupJobs"):
        return "list"
    if "/backupJobs/" in path:
        return "get " + path.rsplit("/", 1)[-1]
    return "vault"


def filter_of(send: Send) -> str:
    return parse_qs(urlsplit(send.request.url).query)["$filter"][0]


def test_filter_starts_at_the_oldest_watched_job_minus_skew_and_lists_in_progress_only() -> None:
    jobs = [WatchedJob("a", NOW - timedelta(hours=3)), WatchedJob("b", NOW - timedelta(hours=1))]
    odata = listing_filter(jobs, NOW)
    assert odata is not None
    assert "status eq 'InProgress'" in odata
    oldest = NOW - timedelta(hours=3) - START_SKEW
    assert f"startTime eq '{oldest.strftime('%Y-%m-%d %I:%M:%S %p')}'" in odata
    assert "endTime eq '2026-12-02 08:00:00 PM'" in odata


def test_filter_with_an_unknown_start_looks_back_a_day_and_empty_watch_lists_nothing() -> None:
    odata = listing_filter([WatchedJob("a", NOW), WatchedJob("b")], NOW)
    assert odata is not None and "startTime eq '2026-11-30 07:55:00 PM'" in odata
    assert listing_filter([], NOW) is None


def test_fan_out_covers_running_listed_jobs_only_case_insensitively() -> None:
    from airflow_backup_provider.protocol import parse_job

    listed = [parse_job(body("AAA")), parse_job(body("bbb", "Completed")), parse_job(body("zzz"))]
    covered = running_in_listing(["aaa", "bbb", "ccc"], listed)
    assert list(covered) == ["aaa"]
    assert jobs_needing_own_read(["aaa", "bbb", "ccc"], covered) == ["bbb", "ccc"]


def test_poll_delays_are_jittered_within_the_interval() -> None:
    rng = random.Random(7)
    delays = [next_poll_delay(30.0, rng) for _ in range(200)]
    assert all(30.0 * (1 - JITTER) <= d <= 30.0 for d in delays)
    assert len({round(d, 3) for d in delays}) > 100  # not one fixed phase
    firsts = [next_poll_delay(30.0, rng, first=True) for _ in range(200)]
    assert min(firsts) < 5.0 and max(firsts) > 25.0 and all(0 <= d <= 30.0 for d in firsts)


def test_one_listing_covers_running_jobs_and_terminal_ones_get_their_own_read() -> None:
    watched = watch("j1", "j2", "j3")
    driver = Driver(
        resp(200, page(body("j1"), body("j2"))),  # j3 finished: not among the InProgress jobs
        resp(200, body("j3", "Completed")),
    )
    poll = driver.run(poll_vault(API, VAULT, watched, now=NOW, clock=driver.clock))
    assert [kind(s) for s in driver.sends] == ["list", "get j3"]
    assert poll.listed and poll.throttled_for is None
    assert {k: (o.job.status if o.job else None) for k, o in poll.observations.items()} == {
        "j1": "InProgress",
        "j2": "InProgress",
        "j3": "Completed",
    }
    assert watched["j1"].start_time == NOW  # learned from the listing: the next filter starts there
    assert "startTime eq '2026-12-01 07:55:00 PM'" in (listing_filter(watched.values(), NOW) or "")


def test_pages_are_followed() -> None:
    watched = watch("j1", "j2")
    next_link = f"{ARM}{VAULT_PATH}/backupJobs?api-version=2019-05-13&$skiptoken=abc"
    driver = Driver(resp(200, page(body("j1"), next_link=next_link)), resp(200, page(body("j2"))))
    poll = driver.run(poll_vault(API, VAULT, watched, now=NOW, clock=driver.clock))
    assert [kind(s) for s in driver.sends] == ["list", "list"]
    assert set(poll.observations) == {"j1", "j2"}


def test_throttled_listing_stops_the_whole_poll_once_for_the_vault() -> None:
    watched = watch("j1", "j2", "j3")
    throttled = resp(429, arm_error("TooManyRequests", "slow down"), {"Retry-After": "200"})
    driver = Driver(throttled)
    poll = driver.run(poll_vault(API, VAULT, watched, now=NOW, clock=driver.clock))
    assert [kind(s) for s in driver.sends] == ["list"]  # no per-job reads while throttled
    assert poll.observations == {} and poll.throttled_for == 200.0
    assert throttle_delay(30.0, poll) == 200.0 and throttle_delay(30.0, VaultPoll(listed=True)) == 30.0


def test_failing_listing_falls_back_to_one_read_per_job() -> None:
    watched = watch("j1", "j2")
    bad = resp(400, arm_error("BMSUserErrorInvalidInput", "filter not supported"))
    driver = Driver(bad, resp(200, body("j1")), resp(200, body("j2", "Failed")))
    poll = driver.run(poll_vault(API, VAULT, watched, now=NOW, clock=driver.clock))
    assert [kind(s) for s in driver.sends] == ["list", "get j1", "get j2"]
    assert not poll.listed
    assert poll.observations["j2"].job is not None and poll.observations["j2"].job.status == "Failed"


def test_job_not_visible_yet_is_waited_out_with_one_vault_check_per_poll() -> None:
    watched = watch("j1", "j2")
    not_found = resp(404, arm_error("ResourceNotFound", "no such job"))
    clock = FakeClock()
    driver = Driver(resp(200, page()), not_found, resp(200, {"id": "vault"}), not_found, clock=clock)
    poll = driver.run(poll_vault(API, VAULT, watched, now=NOW, clock=clock))
    assert [kind(s) for s in driver.sends] == ["list", "get j1", "vault", "get j2"]
    assert poll.observations["j1"].not_visible and poll.observations["j2"].not_visible
    clock.now += 601  # past the grace period: the 404 ends the wait
    driver = Driver(resp(200, page()), not_found, resp(200, body("j2")), clock=clock)
    poll = driver.run(poll_vault(API, VAULT, watched, now=NOW, clock=clock))
    assert isinstance(poll.observations["j1"].error, AzureBackupNotFoundError)
    assert poll.observations["j2"].job is not None


def test_missing_vault_fails_the_job_naming_the_vault() -> None:
    watched = watch("j1")
    not_found = resp(404, arm_error("ResourceNotFound", "nothing here"))
    driver = Driver(not_found, not_found, not_found)
    poll = driver.run(poll_vault(API, VAULT, watched, now=NOW, clock=driver.clock))
    error = poll.observations["j1"].error
    assert isinstance(error, AzureBackupNotFoundError) and VAULT.vault_name in str(error)


def test_token_refresh_is_one_repeat_of_the_listing() -> None:
    watched = watch("j1")
    driver = Driver(resp(401, arm_error("ExpiredAuthenticationToken", "expired")), resp(200, page(body("j1"))))
    poll = driver.run(poll_vault(API, VAULT, watched, now=NOW, clock=driver.clock))
    assert [(kind(s), s.refresh_token) for s in driver.sends] == [("list", False), ("list", True)]
    assert poll.observations["j1"].job is not None


@pytest.mark.parametrize("n", [1, 50, 1000])
def test_requests_per_poll_do_not_grow_with_running_jobs(n: int) -> None:
    watched = watch(*[f"j{i}" for i in range(n)], start=NOW)
    driver = Driver(resp(200, page(*[body(f"j{i}") for i in range(n)])))
    poll = driver.run(poll_vault(API, VAULT, watched, now=NOW, clock=driver.clock))
    assert len(driver.sends) == 1 and len(poll.observations) == n
