"""A vendor REST API of interval readings, served by uvicorn on loopback (docs/vendor.md).

* ``POST /oauth/token``: OAuth2 client credentials (form body ``grant_type``,
  ``client_id``, ``client_secret``); a bearer token that expires after ``token_ttl`` s.
* ``GET /v1/readings?since=ISO&until=ISO&cursor=C``: cursor pagination; the body is
  ``{"readings": [...], "next_cursor": C | null}``.
* ``GET /v2/readings?since=ISO&until=ISO&page=N``: page pagination; the next page is in
  ``Link: <URL>; rel="next"``; the body is ``{"readings": [...], "page": N}``.

``since`` is exclusive and ``until`` inclusive, on each reading's ``interval_end``. A
reading is ``{"meter_id", "channel", "interval_end" (ISO-8601 UTC), "interval_seconds",
"value_mwh"}``; readings come ordered by interval end, then meter.

Every readings call counts against a fixed window of ``rate_limit`` calls per
``rate_window`` s, reported as ``X-RateLimit-Remaining`` and ``X-RateLimit-Reset``
(seconds until the window resets); past it the answer is 429 with ``Retry-After``. A
fraction ``fail_rate`` of calls answers 503, ``slow_rate`` is delayed ``slow_seconds``,
and ``duplicate_rate`` of pages is served twice (the next cursor or link points at the
same page once more). The data is a deterministic load shape per meter: meters
``VND-00001``, ... (``meters`` of them), or the ``meter_ids`` given, each a household
unless ``load_kinds`` names its kind.

An **outage** makes every call (token and readings) answer 503 for a while: ``outage``
``(begin, end)`` in seconds after the server started, and/or :meth:`VendorApi.outage`,
which starts one now. ``stats.requests`` counts every request that reached the server
(outage or not), so a test can tell that a client made no call while its circuit was open.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from meterledger.core.time import iso_utc, parse_instant
from meterledger.simulate.loadshapes import TYPICAL_DAILY_KWH, LoadKind, profile

__all__ = ["CHANNEL", "VendorApi", "VendorConfig", "VendorStats", "truth"]

CHANNEL = "1.0.1.8.0.255"


@dataclass(frozen=True, slots=True)
class VendorConfig:
    meters: int = 3
    start: int = 1_717_200_000  # epoch of the first interval's start (2024-06-01T00:00Z)
    intervals: int = 96 * 3  # per meter
    interval_seconds: int = 900
    client_id: str = "meterledger"
    client_secret: str = "secret"
    token_ttl: float = 3600.0
    page_size: int = 50
    rate_limit: int = 1000  # calls per window
    rate_window: float = 1.0
    fail_rate: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.2
    duplicate_rate: float = 0.0
    seed: int = 7
    meter_ids: tuple[str, ...] | None = None  # None: VND-00001 ... VND-{meters}
    load_kinds: tuple[LoadKind, ...] = ()  # per meter, in order; residential past its end
    outage: tuple[float, float] | None = None  # (begin, end) s after start(): all 503

    def __post_init__(self) -> None:
        if self.meter_ids is not None and (
            not self.meter_ids or len(set(self.meter_ids)) != len(self.meter_ids)
        ):
            raise ValueError("meter_ids are distinct, and at least one")
        if self.outage is not None and not 0 <= self.outage[0] <= self.outage[1]:
            raise ValueError(f"an outage is (begin, end) with 0 <= begin <= end, got {self.outage}")

    @property
    def served_meters(self) -> tuple[str, ...]:
        """The meters whose readings the API serves, in the order of their seeds."""
        if self.meter_ids is not None:
            return self.meter_ids
        return tuple(f"VND-{i + 1:05d}" for i in range(self.meters))

    def kind_of(self, index: int) -> LoadKind:
        return self.load_kinds[index] if index < len(self.load_kinds) else LoadKind.RESIDENTIAL


@dataclass(slots=True)
class VendorStats:
    calls: int = 0
    tokens: int = 0
    unauthorized: int = 0
    throttled: int = 0
    failed: int = 0  # answered 503: by fail_rate or by an outage
    duplicated: int = 0
    requests: int = 0  # every request that reached the server, token calls included
    outage: int = 0  # answered 503 by an outage (token calls included)


Reading = tuple[str, int, int]  # meter_id, interval_end, value (mWh)


def truth(config: VendorConfig) -> list[Reading]:
    """Every reading the API holds, ordered by interval end, then meter."""
    found: list[Reading] = []
    first_end = config.start + config.interval_seconds
    for i, meter in enumerate(config.served_meters):
        kind = config.kind_of(i)
        low, high = TYPICAL_DAILY_KWH[kind]
        values = profile(
            kind,
            start=first_end,
            intervals=config.intervals,
            interval_seconds=config.interval_seconds,
            tz="UTC",
            daily_kwh=25.0 if kind is LoadKind.RESIDENTIAL else (low + high) / 2,
            rng=random.Random(config.seed * 1000 + i),
        )
        found += [(meter, first_end + n * config.interval_seconds, v) for n, v in enumerate(values)]
    found.sort(key=lambda r: (r[1], r[0]))
    return found


def _as_json(config: VendorConfig, r: Reading) -> dict[str, object]:
    return {
        "meter_id": r[0],
        "channel": CHANNEL,
        "interval_end": iso_utc(r[1]),
        "interval_seconds": config.interval_seconds,
        "value_mwh": r[2],
    }


@dataclass(slots=True)
class _State:
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    window_start: float = 0.0
    window_calls: int = 0
    served_twice: set[tuple[str, int]] = field(default_factory=set)


class VendorApi:
    """The API on ``127.0.0.1``: ``start()`` it (a background thread), ``stop()`` it."""

    def __init__(self, config: VendorConfig | None = None, port: int = 0) -> None:
        self.config = config or VendorConfig()
        self.readings = truth(self.config)
        self.stats = VendorStats()
        self._state = _State()
        self._rng = random.Random(self.config.seed)
        self._lock = threading.Lock()
        self._port = port
        self.app = self._build()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._outages: list[tuple[float, float]] = []  # (begin, end), monotonic
        self.base_url = ""

    def revoke_tokens(self) -> None:
        """Forget every token (the next call with one gets 401)."""
        with self._lock:
            self._state.tokens.clear()

    def outage(self, seconds: float) -> None:
        """Answer every call with 503 for ``seconds`` from now."""
        if seconds < 0:
            raise ValueError(f"an outage lasts 0 s or more, got {seconds}")
        now = time.monotonic()
        with self._lock:
            self._outages.append((now, now + seconds))

    def in_outage(self) -> bool:
        """Is an outage on now?"""
        now = time.monotonic()
        with self._lock:
            return any(begin <= now < end for begin, end in self._outages)

    def _refused(self) -> JSONResponse | None:
        """Count the request; a 503 when an outage is on."""
        now = time.monotonic()
        with self._lock:
            self.stats.requests += 1
            if not any(begin <= now < end for begin, end in self._outages):
                return None
            self.stats.outage += 1
            self.stats.failed += 1
        return JSONResponse({"error": "outage"}, status_code=503)

    # -- serving ------------------------------------------------------------------------
    def start(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._port))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the vendor API did not start")
            time.sleep(0.01)
        self.base_url = f"http://127.0.0.1:{port}"
        if self.config.outage is not None:
            begin, end = self.config.outage
            now = time.monotonic()
            with self._lock:
                self._outages.append((now + begin, now + end))
        return self.base_url

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = None

    def __enter__(self) -> VendorApi:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the app ------------------------------------------------------------------------
    def _build(self) -> FastAPI:
        app = FastAPI(title="meterledger vendor API simulator")
        app.add_api_route("/oauth/token", self._token, methods=["POST"])
        app.add_api_route("/v1/readings", self._v1, methods=["GET"])
        app.add_api_route("/v2/readings", self._v2, methods=["GET"])
        return app

    async def _token(self, request: Request) -> JSONResponse:
        refused = self._refused()
        if refused is not None:
            return refused
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if (form.get("client_id"), form.get("client_secret")) != (
            self.config.client_id,
            self.config.client_secret,
        ):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._state.tokens[token] = time.monotonic() + self.config.token_ttl
            self.stats.tokens += 1
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.config.token_ttl}
        return JSONResponse(body)

    def _gate(self, request: Request) -> tuple[JSONResponse | None, dict[str, str]]:
        """Authorisation, the rate limit and injected failures: an answer that ends the
        call (or None) and the rate-limit headers."""
        cfg = self.config
        with self._lock:
            self.stats.calls += 1  # every readings call, an outage's too
        refused = self._refused()
        if refused is not None:
            return refused, {}
        with self._lock:
            now = time.monotonic()
            auth = request.headers.get("authorization", "")
            expiry = self._state.tokens.get(auth.removeprefix("Bearer "))
            if not auth.startswith("Bearer ") or expiry is None or expiry <= now:
                self.stats.unauthorized += 1
                return JSONResponse({"error": "invalid_token"}, status_code=401), {}
            if now - self._state.window_start >= cfg.rate_window:
                self._state.window_start, self._state.window_calls = now, 0
            reset = max(0.0, cfg.rate_window - (now - self._state.window_start))
            self._state.window_calls += 1
            remaining = cfg.rate_limit - self._state.window_calls
            headers = {
                "X-RateLimit-Limit": str(cfg.rate_limit),
                "X-RateLimit-Remaining": str(max(0, remaining)),
                "X-RateLimit-Reset": f"{reset:.3f}",
            }
            if remaining < 0:
                self.stats.throttled += 1
                headers["Retry-After"] = f"{reset:.3f}"
                return JSONResponse({"error": "rate_limited"}, 429, headers), headers
            if self._rng.random() < cfg.fail_rate:
                self.stats.failed += 1
                return JSONResponse({"error": "unavailable"}, 503, headers), headers
        return None, headers

    def _slice(self, request: Request, at: int, key: str) -> tuple[list[dict[str, object]], int]:
        """The page of readings from offset ``at`` and the offset of the next page (the
        same again, once, for a duplicated page)."""
        q = request.query_params
        lo = parse_instant(q["since"]).timestamp() if "since" in q else float("-inf")
        hi = parse_instant(q["until"]).timestamp() if "until" in q else float("inf")
        chosen = [r for r in self.readings if lo < r[1] <= hi]
        page = chosen[at : at + self.config.page_size]
        following = at + len(page)
        with self._lock:
            twice = (key, at) not in self._state.served_twice
            if page and twice and self._rng.random() < self.config.duplicate_rate:
                self._state.served_twice.add((key, at))
                self.stats.duplicated += 1
                following = at
        more = following < len(chosen)
        return [_as_json(self.config, r) for r in page], following if more else -1

    async def _slow(self) -> None:
        with self._lock:
            slow = self._rng.random() < self.config.slow_rate
        if slow:
            await asyncio.sleep(self.config.slow_seconds)

    async def _v1(self, request: Request) -> JSONResponse:
        stop, headers = self._gate(request)
        if stop is not None:
            return stop
        await self._slow()
        at = int(request.query_params.get("cursor") or 0)
        key = f"v1{request.query_params.get('since')}{request.query_params.get('until')}"
        page, following = self._slice(request, at, key)
        body: dict[str, Any] = {"readings": page, "next_cursor": None}
        if following >= 0:
            body["next_cursor"] = str(following)
        return JSONResponse(body, headers=headers)

    async def _v2(self, request: Request) -> JSONResponse:
        stop, headers = self._gate(request)
        if stop is not None:
            return stop
        await self._slow()
        number = int(request.query_params.get("page") or 1)
        size = self.config.page_size
        key = f"v2{request.query_params.get('since')}{request.query_params.get('until')}"
        page, following = self._slice(request, (number - 1) * size, key)
        if following >= 0:
            params = {k: v for k, v in request.query_params.items() if k != "page"}
            params["page"] = str(following // size + 1)
            url = f"{request.base_url}v2/readings?{urlencode(params)}"
            headers["Link"] = f'<{url}>; rel="next"'
        return JSONResponse({"readings": page, "page": number}, headers=headers)
