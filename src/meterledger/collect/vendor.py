"""A poller of a vendor REST API of interval readings (httpx, asyncio; docs/vendor.md).

* OAuth2 client credentials: the token is fetched before the first call, refreshed
  ``refresh_margin`` of its lifetime before it expires, and at once on a 401.
* Both pagination styles: ``cursor`` (``/v1/readings``, ``next_cursor`` in the body) and
  ``link`` (``/v2/readings``, ``Link: <...>; rel="next"``).
* Rate limits: when ``X-RateLimit-Remaining`` falls to ``floor`` it sleeps until
  ``X-RateLimit-Reset`` before the next call, so it is not throttled; a 429 waits
  ``Retry-After``.
* Transient failures (429, 5xx, connection errors and timeouts) are retried with
  tenacity, exponential backoff with full jitter, at most ``attempts`` in all.
* Windowed back-fill: from the feed's high-water mark to ``until`` in windows of
  ``window`` seconds, so a long outage is caught up in bounded requests.
* A circuit breaker per endpoint (optional ``breakers``, keyed ``host:port`` of the base
  URL). Every HTTP attempt, token requests included, is one call: a 5xx, a refused or cut
  connection or a timeout is a failure; any other answer (200, 401, 404, ...) proves the
  endpoint works and is a success; a 429 is neither (throttling says nothing about the
  endpoint's health; ``Retry-After`` handles it). While the circuit is open the poller
  makes no call: it *pauses* until the cool-down ends and goes on with the probe. A page
  whose attempts ran out as the circuit opened is not the end of the poll: it becomes the
  probe. Only when the circuit has stayed open for ``patience`` seconds does the poll give
  up, with :class:`~meterledger.collect.errors.CircuitOpenError` (E03); the high-water mark
  then holds what was stored.

Each page comes out as a :class:`VendorPage`: its new readings (those already handed out
in this run, as from a duplicated page, left out) and the mark to store with them. The
mark is the ISO-8601 interval end up to which everything has been handed out: the end of
the window on its last page, else the last interval end before the page's final one (a
page boundary may fall among the meters of one interval end).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from meterledger.collect.breaker import (
    BreakerBoard,
    BreakerState,
    CircuitBreaker,
    wait_until_allowed,
)
from meterledger.collect.errors import (
    CircuitOpenError,
    CollectError,
    ConnectFailedError,
    MeterProtocolError,
)
from meterledger.core.time import iso_utc, parse_instant

__all__ = [
    "DEFAULT_PATIENCE",
    "VendorPage",
    "VendorPoller",
    "VendorReading",
    "VendorSettings",
    "endpoint_key",
    "page_csv",
]

Sleep = Callable[[float], Awaitable[None]]
STYLES = ("cursor", "link")
DEFAULT_PATIENCE = 600.0  # s a circuit may stay open before the poll gives up
log = logging.getLogger("meterledger.collect.vendor")


@dataclass(frozen=True, slots=True)
class VendorSettings:
    base_url: str
    client_id: str
    client_secret: str
    style: str = "cursor"
    window: int = 86_400  # seconds of back-fill per window
    attempts: int = 5
    initial: float = 0.05  # s: the first retry waits up to this long
    maximum: float = 2.0  # s: no backoff is longer
    floor: int = 1  # X-RateLimit-Remaining at which it waits for the reset
    refresh_margin: float = 0.1  # of the token's lifetime
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"style must be one of {STYLES}, got {self.style!r}")
        if not 1 <= self.attempts <= 5:
            raise ValueError("between 1 and 5 attempts")
        if self.window <= 0:
            raise ValueError("the back-fill window is positive")


@dataclass(frozen=True, slots=True)
class VendorReading:
    meter_id: str
    channel: str
    interval_end: int
    interval_seconds: int
    value_mwh: int


@dataclass(frozen=True, slots=True)
class VendorPage:
    readings: list[VendorReading]
    mark: str


class TransientVendorError(ConnectFailedError):
    """A 429, a 5xx or a broken connection: worth another attempt."""

    def __init__(self, detail: str, retry_after: float | None = None) -> None:
        super().__init__(detail)
        self.retry_after = retry_after


@dataclass(slots=True)
class _Counts:
    calls: int = 0
    retries: int = 0
    throttled: int = 0
    slowed: int = 0
    tokens: int = 0
    pauses: int = 0  # times the poll waited for an open circuit
    paused_seconds: float = 0.0
    seen: set[tuple[str, int]] = field(default_factory=set)


def endpoint_key(base_url: str) -> str:
    """The breaker key of an API: ``host:port`` of its base URL (the scheme's port if none)."""
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def page_csv(readings: list[VendorReading]) -> bytes:
    """The readings as canonical CSV (values in Wh, exact to the mWh)."""
    lines = ["meter_id,channel,interval_end,interval_seconds,value,unit,quality"]
    for r in readings:
        sign, v = ("-", -r.value_mwh) if r.value_mwh < 0 else ("", r.value_mwh)
        value = f"{sign}{v // 1000}.{v % 1000:03d}"
        end = iso_utc(r.interval_end)
        lines.append(f"{r.meter_id},{r.channel},{end},{r.interval_seconds},{value},Wh,actual")
    return ("\n".join(lines) + "\n").encode()


class VendorPoller:
    """Polls one vendor API; use as ``async with VendorPoller(settings) as poller``.

    With ``breakers`` the API's endpoint has a circuit breaker (``breaker``); ``patience``
    is how long, in seconds of the breaker's clock, the circuit may stay open (re-opened by
    failed probes included) before the poll gives up with E03."""

    def __init__(
        self,
        settings: VendorSettings,
        *,
        sleep: Sleep = asyncio.sleep,
        breakers: BreakerBoard | None = None,
        patience: float = DEFAULT_PATIENCE,
    ) -> None:
        if patience < 0:
            raise ValueError(f"patience is not negative, got {patience}")
        self.settings = settings
        self.sleep = sleep
        self.counts = _Counts()
        self.breaker: CircuitBreaker | None = (
            None if breakers is None else breakers.get(endpoint_key(settings.base_url))
        )
        self.patience = patience
        self._open_since: float | None = None  # when the circuit was first found open
        self._client: httpx.AsyncClient | None = None
        self._token: str | None = None
        self._expires = 0.0
        self._wait_until = 0.0

    async def __aenter__(self) -> VendorPoller:
        self._client = httpx.AsyncClient(
            base_url=self.settings.base_url, timeout=self.settings.timeout
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            raise RuntimeError("use the poller inside 'async with'")
        return self._client

    # -- OAuth2 -------------------------------------------------------------------------
    async def _fetch_token(self) -> None:
        s = self.settings
        form = {"grant_type": "client_credentials", "client_id": s.client_id}
        form["client_secret"] = s.client_secret
        answer = await self._call(
            "token request", lambda: self.client.post("/oauth/token", data=form)
        )
        if answer.status_code >= 500:
            raise TransientVendorError(f"token request answered {answer.status_code}")
        if answer.status_code == 429:  # throttled: Retry-After, as for any other call
            self.counts.throttled += 1
            after = _seconds(answer.headers.get("Retry-After")) or 1.0
            raise TransientVendorError("token request: 429 Too Many Requests", retry_after=after)
        if answer.status_code != 200:
            raise CollectError(f"the vendor refused the client credentials ({answer.text})")
        body = answer.json()
        ttl = float(body.get("expires_in", 3600))
        self._token = str(body["access_token"])
        self._expires = time.monotonic() + ttl * (1 - s.refresh_margin)
        self.counts.tokens += 1

    async def _authorised(self) -> str:
        if self._token is None or time.monotonic() >= self._expires:
            await self._fetch_token()
        assert self._token is not None
        return self._token

    # -- the circuit --------------------------------------------------------------------
    async def _admit(self, breaker: CircuitBreaker) -> None:
        """Return when a call may go; while the circuit is open, pause (no calls) until
        the cool-down ends, or raise E03 once it has been open for ``patience`` s."""
        if breaker.allow():
            return
        clock = breaker.clock
        if self._open_since is None:
            self._open_since = clock()
        deadline = self._open_since + self.patience
        log.warning(
            "vendor feed paused: circuit %s is open, probe in %.1f s",
            breaker.name,
            breaker.retry_after(),
            extra={"endpoint": breaker.name, "code": "feed-paused"},
        )
        self.counts.pauses += 1
        began = clock()
        try:
            await wait_until_allowed(breaker, sleep=self.sleep, deadline=deadline)
        except CircuitOpenError as exc:
            raise CircuitOpenError(
                f"circuit {breaker.name} stayed open for {self.patience:g} s; the poll gave"
                " up (the feed's mark holds what was stored: run it again)"
            ) from exc
        finally:
            self.counts.paused_seconds += clock() - began

    async def _call(
        self, what: str, send: Callable[[], Awaitable[httpx.Response]], *, counted: bool = False
    ) -> httpx.Response:
        """One HTTP attempt, through the breaker when there is one, its outcome recorded
        (``counted``: one of ``counts.calls``, once it is let through)."""
        breaker = self.breaker
        if breaker is not None:
            await self._admit(breaker)
        self.counts.calls += counted
        try:
            answer = await send()
        except httpx.TransportError as exc:
            if breaker is not None:
                breaker.record_failure()
            raise TransientVendorError(f"{what}: {exc!r}") from exc
        except BaseException:
            if breaker is not None:
                breaker.release()  # cancelled: no verdict on the endpoint
            raise
        if breaker is not None:
            if answer.status_code >= 500:
                breaker.record_failure()
            elif answer.status_code == 429:
                breaker.release()  # throttled: says nothing of the endpoint's health
            else:
                breaker.record_success()
                if breaker.state is BreakerState.CLOSED:
                    self._open_since = None
        return answer

    def _circuit_closed(self) -> bool:
        return self.breaker is None or self.breaker.state is BreakerState.CLOSED

    # -- one call -----------------------------------------------------------------------
    async def _get_once(self, url: str, params: dict[str, str] | None) -> httpx.Response:
        wait = self._wait_until - time.monotonic()
        if wait > 0:
            self.counts.slowed += 1
            await self.sleep(wait)
        for refreshed in (False, True):
            token = await self._authorised()
            headers = {"Authorization": f"Bearer {token}"}
            get = functools.partial(self.client.get, url, params=params, headers=headers)
            answer = await self._call(f"GET {url}", get, counted=True)
            self._note_limits(answer)
            if answer.status_code == 401 and not refreshed:
                self._token = None  # expired or revoked early: a new one, once
                continue
            break
        if answer.status_code == 429:
            self.counts.throttled += 1
            after = _seconds(answer.headers.get("Retry-After")) or 1.0
            raise TransientVendorError("429 Too Many Requests", retry_after=after)
        if answer.status_code >= 500:
            raise TransientVendorError(f"GET {url} answered {answer.status_code}")
        if answer.status_code != 200:
            raise MeterProtocolError(f"GET {url} answered {answer.status_code}: {answer.text}")
        return answer

    def _note_limits(self, answer: httpx.Response) -> None:
        remaining = answer.headers.get("X-RateLimit-Remaining")
        reset = _seconds(answer.headers.get("X-RateLimit-Reset"))
        if remaining is not None and reset is not None and int(remaining) <= self.settings.floor:
            self._wait_until = max(self._wait_until, time.monotonic() + reset)

    async def _get(self, url: str, params: dict[str, str] | None) -> httpx.Response:
        s = self.settings

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            if isinstance(error, TransientVendorError) and error.retry_after is not None:
                return error.retry_after
            if not self._circuit_closed():
                return 0.0  # the circuit opened: the pause for its cool-down is the wait
            ceiling = min(s.maximum, s.initial * 2 ** (state.attempt_number - 1))
            return random.uniform(0, ceiling)  # full jitter

        def count(state: RetryCallState) -> None:
            self.counts.retries += 1

        while True:
            retrying = AsyncRetrying(
                sleep=self.sleep,
                stop=stop_after_attempt(s.attempts),
                wait=wait,
                retry=retry_if_exception(lambda e: isinstance(e, TransientVendorError)),
                before_sleep=count,
                reraise=True,
            )
            try:
                answer: httpx.Response = await retrying(self._get_once, url, params)
            except TransientVendorError:
                if self.breaker is None or self.breaker.state is not BreakerState.OPEN:
                    raise  # closed, or half-open and still failing (a 429 to a probe): done
                # the attempts ran out as the circuit opened: pause, and this page is the
                # probe (patience bounds how long)
                self.counts.retries += 1
                continue
            return answer

    # -- pages --------------------------------------------------------------------------
    async def _window_pages(self, lo: int, hi: int) -> AsyncIterator[list[VendorReading]]:
        params = {"since": iso_utc(lo), "until": iso_utc(hi)}
        if self.settings.style == "cursor":
            cursor: str | None = ""
            while cursor is not None:
                query = dict(params, cursor=cursor) if cursor else params
                body = (await self._get("/v1/readings", query)).json()
                yield _readings(body)
                cursor = body.get("next_cursor")
        else:
            url: str | None = "/v2/readings"
            query_: dict[str, str] | None = params
            while url is not None:
                answer = await self._get(url, query_)
                yield _readings(answer.json())
                following = answer.links.get("next", {}).get("url")
                url, query_ = (str(following), None) if following else (None, None)

    async def pages(self, since: int, until: int) -> AsyncIterator[VendorPage]:
        """Every page of readings ending in ``(since, until]``, window by window."""
        lo = since
        while lo < until:
            hi = min(lo + self.settings.window, until)
            done = lo
            async for readings in self._window_pages(lo, hi):
                fresh = [
                    r for r in readings if (r.meter_id, r.interval_end) not in self.counts.seen
                ]
                self.counts.seen.update((r.meter_id, r.interval_end) for r in fresh)
                ends = sorted({r.interval_end for r in readings})
                if len(ends) > 1:
                    done = max(done, ends[-2])
                yield VendorPage(fresh, iso_utc(done))
            yield VendorPage([], iso_utc(hi))
            lo = hi


def _readings(body: dict[str, object]) -> list[VendorReading]:
    rows = body.get("readings")
    if not isinstance(rows, list):
        raise MeterProtocolError("the vendor answer has no readings list")
    return [
        VendorReading(
            str(r["meter_id"]),
            str(r["channel"]),
            int(parse_instant(str(r["interval_end"])).timestamp()),
            int(r["interval_seconds"]),
            int(r["value_mwh"]),
        )
        for r in rows
    ]


def _seconds(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        return None
