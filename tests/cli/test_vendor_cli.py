"""meterledger vendor poll against the simulator on loopback (both backends): JSON report,
VEE after the poll, a second poll with nothing new, and the refusal while paused."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from meterledger.cli.app import app
from meterledger.simulate.vendor_api import VendorApi, VendorConfig
from meterledger.store import open_store

runner = CliRunner()


@pytest.fixture
def api() -> Iterator[VendorApi]:
    with VendorApi(VendorConfig(meters=2, intervals=96, page_size=50)) as running:
        yield running


def poll(db_url: str, api: VendorApi, *extra: str, stdout: bool = False) -> tuple[int, str]:
    args = ["vendor", "poll", "--base-url", api.base_url, "--client-id", "meterledger"]
    args += ["--client-secret", "secret", "--until", "2024-06-02T00:00:00Z", "--db", db_url]
    result = runner.invoke(app, [*args, "--create-meters", "--json", *extra])
    return result.exit_code, result.stdout if stdout else result.output


@pytest.mark.parametrize("style", ["cursor", "link"])
def test_vendor_poll_stores_the_day_once(db_url: str, api: VendorApi, style: str) -> None:
    code, out = poll(db_url, api, "--style", style)
    assert code == 0, out
    report = json.loads(out)
    assert (report["accepted"], report["duplicates"], report["feed"]) == (192, 0, "vendor")
    assert report["mark"] == "2024-06-02T00:00:00+00:00" and "vee" in report
    code, out = poll(db_url, api, "--style", style)
    assert code == 0 and json.loads(out)["accepted"] == 0 and json.loads(out)["calls"] == 0
    store = open_store(db_url)
    try:
        assert store.count("readings") == 192
        assert store.feed_mark("vendor") == "2024-06-02T00:00:00+00:00"
    finally:
        store.close()


def test_vendor_poll_is_refused_while_the_feed_is_paused(db_url: str, api: VendorApi) -> None:
    assert runner.invoke(app, ["pause", "vendor", "--db", db_url]).exit_code == 0
    code, out = poll(db_url, api)
    assert code == 2 and "paused" in out
    assert api.stats.calls == 0 and api.stats.tokens == 0
    store = open_store(db_url)
    try:
        assert store.count("readings") == 0 and store.feed_mark("vendor") is None
    finally:
        store.close()


BREAKER = ["--breaker-cooldown", "0.4", "--breaker-window", "60", "--breaker-probes", "1"]


def test_vendor_poll_rides_out_an_outage_and_status_shows_the_breaker(sqlite_url: str) -> None:
    config = VendorConfig(
        meters=2, intervals=96, page_size=12, slow_rate=1.0, slow_seconds=0.02, outage=(0.2, 1.2)
    )
    url = sqlite_url
    with VendorApi(config) as outage_api:
        code, out = poll(
            url, outage_api, *BREAKER, "--breaker-min-calls", "4", "--patience", "30", stdout=True
        )
        assert code == 0, out
        report = json.loads(out)
        assert outage_api.stats.outage >= 1
    assert report["accepted"] == 192 and report["duplicates"] == 0
    assert report["pauses"] >= 1 and report["paused_seconds"] >= 0.35
    breaker = report["breaker"]
    assert breaker["state"] == "closed" and breaker["opened"] == report["pauses"]
    assert breaker["endpoint"] == f"vendor/{outage_api.base_url.removeprefix('http://')}"
    for key in ("calls", "retries", "throttled", "slowed", "tokens", "mark", "vee"):
        assert key in report  # the keys before breakers are all kept
    status = runner.invoke(app, ["status", "--db", url, "--json"])
    assert status.exit_code == 0, status.output
    (shown,) = json.loads(status.stdout)["breakers"]
    assert shown["endpoint"] == breaker["endpoint"] and shown["opened"] == breaker["opened"]
    assert shown["state"] == "closed"
    store = open_store(url)
    try:
        assert store.count("readings") == 192
    finally:
        store.close()


def test_vendor_poll_gives_up_with_e03_after_its_patience(sqlite_url: str) -> None:
    config = VendorConfig(meters=2, intervals=96, page_size=12, outage=(0.0, 30.0))
    with VendorApi(config) as down:
        code, out = poll(sqlite_url, down, *BREAKER, "--patience", "0.5")
        assert code == 2
        assert "E03" in out and "stayed open for 0.5 s" in out
        assert down.stats.outage >= 2 and down.stats.tokens == 0  # the first probe failed too
    status = runner.invoke(app, ["status", "--db", sqlite_url, "--json"])
    report = json.loads(status.stdout)
    assert report["circuit_paused"] == ["vendor"]
    assert report["breakers"][0]["state"] == "open" and report["breakers"][0]["opened"] >= 1
