"""The vendor poller's circuit breaker against the simulator on real loopback HTTP, into a
real store: an outage opens the circuit, the poll pauses (the API sees no call while the
circuit is open), probes, re-opens while the outage lasts, closes, and stores every reading
once; a circuit open longer than the patience ends the poll with E03, the mark kept, and a
rerun completes; throttling (429) never counts against the endpoint."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from meterledger.cli.feeds import BreakerRecorder, status_report
from meterledger.cli.vendor import PollReport, poll_into
from meterledger.collect.breaker import BreakerBoard, BreakerEvent, BreakerSettings, BreakerState
from meterledger.collect.errors import CircuitOpenError, ConnectFailedError
from meterledger.collect.vendor import VendorSettings, endpoint_key
from meterledger.simulate.vendor_api import VendorApi, VendorConfig, truth
from meterledger.store import Store, open_store

COOLDOWN = 0.4


def stored(store: Store, config: VendorConfig) -> list[tuple[str, int, int]]:
    end = config.start + (config.intervals + 1) * config.interval_seconds
    arrays = store.billing_read(config.start, end)
    got: list[tuple[str, int, int]] = []
    for i, meter in enumerate(arrays.meter_ids):
        lo, hi = int(arrays.offsets[i]), int(arrays.offsets[i + 1])
        ends = arrays.interval_end[lo:hi].tolist()
        got += [(meter, e, v) for e, v in zip(ends, arrays.value[lo:hi].tolist(), strict=True)]
    return sorted(got, key=lambda r: (r[1], r[0]))


class Watcher:
    """A breaker listener that saves each change (as the CLI does) and notes how many
    requests the API had seen at that moment."""

    def __init__(self, store: Store, api: VendorApi) -> None:
        self.api = api
        self.recorder = BreakerRecorder(store)
        self.events: list[tuple[BreakerEvent, int]] = []

    def __call__(self, event: BreakerEvent) -> None:
        self.events.append((event, self.api.stats.requests))
        self.recorder(event)

    def states(self) -> list[BreakerState]:
        return [e.state for e, _ in self.events]


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'vendor.db'}")
    yield s
    s.close()


def poll(
    store: Store,
    api: VendorApi,
    board: BreakerBoard | None,
    patience: float = 30.0,
    **settings: object,
) -> PollReport:
    cfg = api.config
    vendor = VendorSettings(api.base_url, cfg.client_id, cfg.client_secret, **settings)  # type: ignore[arg-type]
    return asyncio.run(
        poll_into(
            store,
            vendor,
            feed="vendor",
            until=cfg.start + cfg.intervals * cfg.interval_seconds,
            since=cfg.start,
            create_meters=True,
            breakers=board,
            patience=patience,
        )
    )


def test_an_outage_opens_the_circuit_pauses_the_poll_and_stores_everything_once(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    config = VendorConfig(
        meters=3, page_size=24, slow_rate=1.0, slow_seconds=0.02, outage=(0.4, 1.6)
    )
    with VendorApi(config) as api:
        watcher = Watcher(store, api)
        board = BreakerBoard.of(BreakerSettings(cooldown=COOLDOWN), feed="vendor", listener=watcher)
        with caplog.at_level(logging.WARNING, logger="meterledger"):
            report = poll(store, api, board)
        assert api.stats.outage >= 2  # the outage really happened, and was probed
        assert report.calls == api.stats.calls  # every GET the poller counts reached the API
        # nothing lost, nothing twice
        assert stored(store, config) == truth(config)
        assert store.count("readings") == len(truth(config)) == 3 * 96 * 3
        assert report.accepted == len(truth(config)) and report.duplicates == 0
        states = watcher.states()
        assert states[0] is BreakerState.OPEN and states[-1] is BreakerState.CLOSED
        assert states.count(BreakerState.OPEN) >= 2  # a probe during the outage re-opened it
        # while open, no request reached the API; the half-open probe came after the cool-down
        for (opened, seen), (probe, then) in itertools.pairwise(watcher.events):
            if opened.state is BreakerState.OPEN:
                assert probe.state is BreakerState.HALF_OPEN
                assert then == seen
                assert probe.at - opened.at >= COOLDOWN - 0.01
        assert report.pauses == states.count(BreakerState.OPEN)
        assert report.paused_seconds >= COOLDOWN * report.pauses - 0.05
        assert report.breaker is not None
        assert report.breaker["state"] == "closed" and report.breaker["opened"] == report.pauses
        assert report.breaker["endpoint"] == f"vendor/{endpoint_key(api.base_url)}"
    opened_lines = [r for r in caplog.records if getattr(r, "code", None) == "circuit-open"]
    assert len(opened_lines) == report.pauses and opened_lines[0].levelno == logging.ERROR
    paused_lines = [r for r in caplog.records if getattr(r, "code", None) == "feed-paused"]
    assert len(paused_lines) == report.pauses
    status = status_report(store)
    (breaker,) = status["breakers"]
    assert breaker["endpoint"] == report.breaker["endpoint"] and breaker["feed"] == "vendor"
    assert breaker["state"] == "closed" and breaker["opened"] == report.pauses
    assert status["circuit_paused"] == []


def test_a_circuit_open_past_the_patience_ends_the_poll_with_e03_and_a_rerun_completes(
    sqlite_store: Store,
) -> None:
    store = sqlite_store
    config = VendorConfig(
        meters=2, page_size=24, slow_rate=1.0, slow_seconds=0.02, outage=(0.3, 1.5)
    )
    with VendorApi(config) as api:
        watcher = Watcher(store, api)
        board = BreakerBoard.of(BreakerSettings(cooldown=COOLDOWN), feed="vendor", listener=watcher)
        began = time.monotonic()
        with pytest.raises(CircuitOpenError, match=r"E03 .*stayed open for 0.6 s"):
            poll(store, api, board, patience=0.6)
        assert time.monotonic() - began < 1.5  # gave up inside the outage
        mark = store.feed_mark("vendor")
        assert mark is not None and mark < "2024-06-04T00:00:00+00:00"  # the stored pages
        kept = store.count("readings")
        assert 0 < kept < len(truth(config))
        status = status_report(store)
        assert status["circuit_paused"] == ["vendor"]  # saved as it opened, not at the end
        assert status["breakers"][0]["state"] == "open"
        while api.in_outage():
            time.sleep(0.05)
        again = BreakerBoard.of(BreakerSettings(cooldown=COOLDOWN), feed="vendor", listener=watcher)
        report = poll(store, api, again)
        assert report.since == mark and report.pauses == 0
        assert stored(store, config) == truth(config)
        assert store.count("readings") == len(truth(config))
        assert kept + report.accepted == len(truth(config))
        assert report.duplicates <= config.meters  # only the mark's own interval end again
    assert status_report(store)["circuit_paused"] == []


def test_throttling_is_not_a_failure_of_the_endpoint(sqlite_store: Store) -> None:
    config = VendorConfig(meters=2, intervals=96, page_size=24, rate_limit=2, rate_window=0.5)
    with VendorApi(config) as api:
        board = BreakerBoard.of(BreakerSettings(threshold=1, min_calls=1), feed="vendor")
        report = poll(sqlite_store, api, board, floor=-1)  # never slows down: gets 429s
        assert api.stats.throttled >= 2 and report.throttled == api.stats.throttled
        assert report.breaker is not None and report.breaker["opened"] == 0
        assert report.pauses == 0
        assert stored(sqlite_store, config) == truth(config)


def test_a_failure_that_is_not_an_outage_is_retried_without_opening_a_quiet_circuit(
    sqlite_store: Store,
) -> None:
    config = VendorConfig(meters=2, intervals=192, page_size=12, fail_rate=0.05, seed=5)
    with VendorApi(config) as api:
        board = BreakerBoard.of(BreakerSettings(cooldown=COOLDOWN, min_calls=200), feed="vendor")
        report = poll(sqlite_store, api, board)
        assert api.stats.failed >= 1 and report.retries >= api.stats.failed
        assert report.breaker is not None and report.breaker["opened"] == 0
        assert 0 < float(str(report.breaker["failure_rate"])) < 0.5
        assert stored(sqlite_store, config) == truth(config)


def test_endpoint_key_is_host_and_port() -> None:
    assert endpoint_key("http://127.0.0.1:8700/api") == "127.0.0.1:8700"
    assert endpoint_key("https://ami.example/api") == "ami.example:443"
    assert endpoint_key("http://ami.example") == "ami.example:80"


def test_a_throttled_probe_ends_the_poll_instead_of_probing_for_ever(sqlite_store: Store) -> None:
    """An API that throttles every call as it comes back from an outage: the probe is
    answered 429, which frees its slot and says nothing of the endpoint. The page's
    attempts run out with the circuit half-open, and the poll ends with that error (as with
    the circuit closed), well within its patience, rather than probing again and again."""
    config = VendorConfig(meters=1, intervals=8, rate_limit=0, rate_window=0.05, outage=(0.3, 0.8))
    with VendorApi(config) as api:
        board = BreakerBoard.of(BreakerSettings(threshold=1, cooldown=0.2), feed="vendor")
        started = time.monotonic()
        with pytest.raises(ConnectFailedError, match="429"):
            poll(sqlite_store, api, board, patience=600.0, initial=0.01, maximum=0.02)
        assert time.monotonic() - started < 20
        assert api.stats.throttled > 0
    assert sqlite_store.count("readings") == 0  # nothing was served, nothing stored
