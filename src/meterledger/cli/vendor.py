"""``meterledger vendor poll|serve``: a vendor REST feed, exactly once (docs/vendor.md).

The composition root of the vendor poller: :class:`~meterledger.collect.vendor.VendorPoller`
pages through the API from the feed's high-water mark, and each page goes through ingest
(validation, idempotency keys, quarantine, audit) with its new mark in the same write
transaction; then the VEE rules run over the new batches. The API's endpoint has a
circuit breaker (named ``FEED/host:port``): while it is open the poll pauses, and each
change is saved at once for ``meterledger status`` (``BreakerRecorder``).
"""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated

import typer

from meterledger.cli.breaker_options import (
    FEED_COOLDOWN,
    CooldownOption,
    FailureRateOption,
    MinCallsOption,
    ProbesOption,
    ThresholdOption,
    WindowOption,
    breaker_summary,
    feed_breaker_settings,
)
from meterledger.cli.common import (
    DbOption,
    JsonOption,
    console,
    emit_json,
    handle_errors,
    open_db,
)
from meterledger.cli.feeds import BreakerRecorder, refuse_if_paused, save_breakers
from meterledger.cli.vee import print_outcome
from meterledger.collect.breaker import BreakerBoard
from meterledger.collect.vendor import DEFAULT_PATIENCE, VendorPoller, VendorSettings, page_csv
from meterledger.core.time import epoch_of, parse_instant
from meterledger.ingest.pipeline import IngestOptions, Ingestor
from meterledger.store.base import Store

__all__ = ["PollReport", "app", "poll_into"]

app = typer.Typer(help="Vendor REST API feeds.", no_args_is_help=True)


@dataclass(slots=True)
class PollReport:
    feed: str
    since: str
    mark: str | None
    pages: int = 0
    readings: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    calls: int = 0
    retries: int = 0
    throttled: int = 0
    slowed: int = 0
    tokens: int = 0
    pauses: int = 0  # waits for an open circuit
    paused_seconds: float = 0.0
    breaker: dict[str, object] | None = None  # breaker_summary of the endpoint's breaker

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__slots__}


async def poll_into(
    store: Store,
    settings: VendorSettings,
    *,
    feed: str,
    until: int,
    since: int,
    create_meters: bool = False,
    max_pages: int | None = None,
    breakers: BreakerBoard | None = None,
    patience: float = DEFAULT_PATIENCE,
) -> PollReport:
    """Poll from the feed's mark (else ``since``) to ``until``; ingest each page with its
    mark. ``max_pages`` stops early (as a killed poller would). With ``breakers`` the
    endpoint's circuit pauses the poll while open; it gives up with E03 (the mark kept)
    after ``patience`` seconds of the circuit staying open. The breakers' readings are
    saved at the end (E03 or not) for ``meterledger status``."""
    held = store.feed_mark(feed)
    start = epoch_of(parse_instant(held)) if held else since
    report = PollReport(feed, datetime.fromtimestamp(start, UTC).isoformat(), held)
    ingestor = Ingestor(store)
    options = IngestOptions(fmt="csv", create_meters=create_meters)
    async with VendorPoller(settings, breakers=breakers, patience=patience) as poller:
        try:
            await _pages_into(poller, ingestor, options, report, start, until, max_pages)
        finally:
            if breakers is not None:  # for `meterledger status`, an E03 included
                save_breakers(store, breakers.readings())
        c = poller.counts
        report.calls, report.retries, report.throttled = c.calls, c.retries, c.throttled
        report.slowed, report.tokens = c.slowed, c.tokens
        report.pauses, report.paused_seconds = c.pauses, round(c.paused_seconds, 3)
        report.breaker = None if breakers is None else breaker_summary(breakers)
    return report


async def _pages_into(
    poller: VendorPoller,
    ingestor: Ingestor,
    options: IngestOptions,
    report: PollReport,
    start: int,
    until: int,
    max_pages: int | None,
) -> None:
    feed = report.feed
    async for page in poller.pages(start, until):
        result = ingestor.ingest_stream(
            io.BytesIO(page_csv(page.readings)),
            fmt="csv",
            source=f"vendor:{feed}",
            options=options,
            mark=(feed, page.mark),
        )
        report.pages += 1
        report.readings += len(page.readings)
        report.accepted += result.counts.accepted
        report.duplicates += result.counts.duplicates
        report.quarantined += result.counts.quarantined
        report.mark = page.mark
        if max_pages is not None and report.pages >= max_pages:
            break


@app.command("poll")
@handle_errors
def poll(
    base_url: Annotated[str, typer.Option("--base-url", help="The vendor API's base URL.")],
    client_id: Annotated[str, typer.Option("--client-id", help="OAuth2 client id.")],
    client_secret: Annotated[str, typer.Option("--client-secret", help="OAuth2 secret.")],
    style: Annotated[
        str, typer.Option("--style", help="Pagination: cursor (/v1) or link (/v2).")
    ] = "cursor",
    feed: Annotated[str, typer.Option("--feed", help="The feed name (mark, pause).")] = "vendor",
    since: Annotated[
        str, typer.Option("--since", help="Start (ISO-8601) when the feed has no mark yet.")
    ] = "2024-06-01T00:00:00Z",
    until: Annotated[
        str | None, typer.Option("--until", help="End (ISO-8601); default now.")
    ] = None,
    window: Annotated[int, typer.Option("--window", min=60, help="Back-fill window, s.")] = 86_400,
    create_meters: Annotated[
        bool, typer.Option("--create-meters", help="Register unknown meters.")
    ] = False,
    max_pages: Annotated[
        int | None, typer.Option("--max-pages", min=1, help="Stop after this many pages.")
    ] = None,
    patience: Annotated[
        float,
        typer.Option(
            "--patience", min=0.0, help="Give up (E03) after the circuit stays open this long, s."
        ),
    ] = DEFAULT_PATIENCE,
    breaker_cooldown: CooldownOption = FEED_COOLDOWN,
    breaker_failure_rate: FailureRateOption = 0.15,
    breaker_min_calls: MinCallsOption = None,
    breaker_window: WindowOption = 60.0,
    breaker_probes: ProbesOption = 1,
    breaker_threshold: ThresholdOption = 5,
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Poll the vendor API from the feed's high-water mark to now, into the store.

    Each page is ingested with its mark in one transaction, so a restarted poll neither
    skips nor repeats; then the VEE rules run. Refused while the feed is paused. The
    endpoint's circuit breaker pauses the poll while it is open (shown by `meterledger
    status`); after --patience seconds open the poll gives up with E03, the mark kept."""
    store = open_db(db)
    refuse_if_paused(store, feed)
    settings = VendorSettings(base_url, client_id, client_secret, style=style, window=window)
    breaker_settings = feed_breaker_settings(
        cooldown=breaker_cooldown,
        failure_rate=breaker_failure_rate,
        min_calls=breaker_min_calls,
        window=breaker_window,
        probes=breaker_probes,
        threshold=breaker_threshold,
    )
    recorder = BreakerRecorder(store)
    board = BreakerBoard.of(breaker_settings, feed=feed, listener=recorder)
    end = epoch_of(parse_instant(until)) if until else int(time.time())
    report = asyncio.run(
        poll_into(
            store,
            settings,
            feed=feed,
            until=end,
            since=epoch_of(parse_instant(since)),
            create_meters=create_meters,
            max_pages=max_pages,
            breakers=board,
            patience=patience,
        )
    )
    with console.status("running the VEE rules…"):
        checked = Ingestor(store).check_pending()
    if json_out:
        emit_json({**report.as_dict(), "vee": checked.as_dict()})
    else:
        console.print(
            f"feed {feed}: {report.pages} pages, {report.readings} readings, accepted"
            f" {report.accepted}, duplicates {report.duplicates}; {report.calls} calls,"
            f" {report.retries} retries, {report.throttled} throttled; mark {report.mark}"
        )
        if report.pauses:
            console.print(
                f"paused {report.pauses} time(s), {report.paused_seconds:.1f} s, while the"
                f" circuit was open (opened {report.breaker and report.breaker['opened']})"
            )
        print_outcome(checked)


@app.command("serve")
@handle_errors
def serve(
    port: Annotated[int, typer.Option("--port", help="Loopback TCP port.")] = 8700,
    meters: Annotated[int, typer.Option("--meters", min=1)] = 3,
    days: Annotated[int, typer.Option("--days", min=1, help="Days of readings.")] = 3,
    client_id: Annotated[str, typer.Option("--client-id")] = "meterledger",
    client_secret: Annotated[str, typer.Option("--client-secret")] = "secret",
    token_ttl: Annotated[float, typer.Option("--token-ttl", help="Token lifetime, s.")] = 3600,
    rate_limit: Annotated[int, typer.Option("--rate-limit", help="Calls per second.")] = 20,
    fail_rate: Annotated[float, typer.Option("--fail-rate", help="Share of 503s.")] = 0.0,
    duplicate_rate: Annotated[float, typer.Option("--duplicate-rate")] = 0.0,
    slow_rate: Annotated[float, typer.Option("--slow-rate")] = 0.0,
    meter_ids: Annotated[
        list[str] | None,
        typer.Option("--meter-id", help="Serve this meter (repeat; default VND-00001...)."),
    ] = None,
    outage_after: Annotated[
        float | None,
        typer.Option("--outage-after", min=0.0, help="Seconds after start an outage begins."),
    ] = None,
    outage_for: Annotated[
        float, typer.Option("--outage-for", min=0.0, help="Seconds the outage lasts (all 503).")
    ] = 10.0,
) -> None:
    """Serve the vendor API simulator on 127.0.0.1 until interrupted.

    With --outage-after every call answers 503 from then on for --outage-for seconds."""
    from meterledger.simulate.vendor_api import VendorApi, VendorConfig

    config = VendorConfig(
        meters=meters,
        intervals=96 * days,
        client_id=client_id,
        client_secret=client_secret,
        token_ttl=token_ttl,
        rate_limit=rate_limit,
        fail_rate=fail_rate,
        duplicate_rate=duplicate_rate,
        slow_rate=slow_rate,
        meter_ids=tuple(meter_ids) if meter_ids else None,
        outage=None if outage_after is None else (outage_after, outage_after + outage_for),
    )
    with VendorApi(config, port=port) as api:
        console.print(f"vendor API on {api.base_url} (Ctrl-C stops)")
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            console.print("stopped")
