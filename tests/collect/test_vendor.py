"""The vendor poller against the simulator on real loopback HTTP, into a real store: token
expiry and 401, both pagination styles, throttling, 20% 5xx, duplicated pages and a
restart from the high-water mark. Every test compares the store with the simulator's truth."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from meterledger.cli.vendor import PollReport, poll_into
from meterledger.collect.vendor import VendorSettings
from meterledger.simulate.vendor_api import VendorApi, VendorConfig, truth
from meterledger.store.base import Store

START = 1_717_200_000  # 2024-06-01T00:00Z
DAY = 86_400


def stored(store: Store) -> list[tuple[str, int, int]]:
    arrays = store.billing_read(START, START + 10 * DAY)
    got: list[tuple[str, int, int]] = []
    for i, meter in enumerate(arrays.meter_ids):
        lo, hi = int(arrays.offsets[i]), int(arrays.offsets[i + 1])
        ends = arrays.interval_end[lo:hi].tolist()
        got += [(meter, e, v) for e, v in zip(ends, arrays.value[lo:hi].tolist(), strict=True)]
    return sorted(got, key=lambda r: (r[1], r[0]))


@pytest.fixture
def serve() -> Iterator[list[VendorApi]]:
    running: list[VendorApi] = []
    yield running
    for api in running:
        api.stop()


def start(running: list[VendorApi], **config: object) -> VendorApi:
    api = VendorApi(VendorConfig(**config))  # type: ignore[arg-type]
    api.start()
    running.append(api)
    return api


def poll(
    store: Store, api: VendorApi, style: str = "cursor", max_pages: int | None = None
) -> PollReport:
    cfg = api.config
    settings = VendorSettings(api.base_url, cfg.client_id, cfg.client_secret, style=style)
    until = cfg.start + cfg.intervals * cfg.interval_seconds
    return asyncio.run(
        poll_into(
            store,
            settings,
            feed="vendor",
            until=until,
            since=cfg.start,
            create_meters=True,
            max_pages=max_pages,
        )
    )


@pytest.mark.parametrize("style", ["cursor", "link"])
def test_both_pagination_styles_store_everything_once(
    store: Store, serve: list[VendorApi], style: str
) -> None:
    api = start(serve, page_size=40)
    report = poll(store, api, style)
    assert stored(store) == api.readings == truth(api.config)
    assert report.accepted == len(api.readings) == 3 * 96 * 3
    # 3 windows of 288 readings: 8 pages each (7 x 40 + 8), and an empty mark page each
    assert report.pages == 3 * 8 + 3 and report.calls == 24
    assert store.feed_mark("vendor") == "2024-06-04T00:00:00+00:00"


def test_token_expiry_mid_run_and_a_revoked_token_refresh(
    store: Store, serve: list[VendorApi]
) -> None:
    api = start(serve, page_size=30, token_ttl=0.3, slow_rate=1.0, slow_seconds=0.05)
    report = poll(store, api, max_pages=10)
    api.revoke_tokens()
    again = poll(store, api)
    assert stored(store) == api.readings
    assert report.tokens >= 2  # the first token expired during the first run
    assert again.tokens >= 1 and api.stats.unauthorized <= 2 + again.tokens


def test_throttling_is_honoured_without_a_storm_of_429s(
    store: Store, serve: list[VendorApi]
) -> None:
    api = start(serve, page_size=30, rate_limit=5, rate_window=0.5)
    report = poll(store, api)
    assert stored(store) == api.readings
    assert api.stats.throttled <= 2
    assert report.slowed >= 3  # it waited for the reset before being throttled


def test_a_fifth_of_calls_failing_loses_and_duplicates_nothing(
    store: Store, serve: list[VendorApi]
) -> None:
    api = start(serve, page_size=25, fail_rate=0.2, seed=11)
    report = poll(store, api)
    assert api.stats.failed >= 5 and report.retries >= api.stats.failed
    assert stored(store) == api.readings
    assert store.count("readings") == len(api.readings)
    assert report.duplicates == 0 and report.accepted == len(api.readings)


@pytest.mark.parametrize("style", ["cursor", "link"])
def test_duplicated_pages_are_stored_exactly_once(
    store: Store, serve: list[VendorApi], style: str
) -> None:
    api = start(serve, page_size=40, duplicate_rate=0.5, seed=3)
    report = poll(store, api, style)
    assert api.stats.duplicated >= 3
    assert stored(store) == api.readings
    assert report.accepted == len(api.readings) and report.readings == len(api.readings)


def test_a_restart_from_the_mark_completes_without_duplicates(
    store: Store, serve: list[VendorApi]
) -> None:
    api = start(serve, page_size=40)
    first = poll(store, api, max_pages=5)  # killed half-way through the first day
    mark = store.feed_mark("vendor")
    assert first.pages == 5 and mark is not None and mark == first.mark
    assert "2024-06-01T00:00:00+00:00" < mark < "2024-06-02T00:00:00+00:00"
    assert 0 < store.count("readings") < len(api.readings)
    second = poll(store, api)
    assert second.since == mark
    assert stored(store) == api.readings
    # only readings of the mark's own interval end (split over a page boundary) come twice
    assert second.duplicates < 3
    assert first.accepted + second.accepted == len(api.readings)
    assert store.feed_mark("vendor") == "2024-06-04T00:00:00+00:00"
    third = poll(store, api)
    assert third.accepted == 0 and third.calls == 0
