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


def poll(db_url: str, api: VendorApi, *extra: str) -> tuple[int, str]:
    args = ["vendor", "poll", "--base-url", api.base_url, "--client-id", "meterledger"]
    args += ["--client-secret", "secret", "--until", "2024-06-02T00:00:00Z", "--db", db_url]
    result = runner.invoke(app, [*args, "--create-meters", "--json", *extra])
    return result.exit_code, result.output


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
