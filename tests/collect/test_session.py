"""DlmsSession over the in-memory pipe against the sans-IO server and a simulated meter:
the client side end to end without sockets (wrapper and HDLC, LLS, suite 0, timeouts)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from meterledger.codec.dlms.client import ClientSettings
from meterledger.codec.dlms.cursor import NEED_DATA
from meterledger.codec.dlms.server import ClientPolicy, DlmsServer, ServerSettings
from meterledger.collect.errors import (
    MeterDataAccessError,
    ResponseTimeoutError,
    SecurityLevelError,
)
from meterledger.collect.session import DlmsSession
from meterledger.collect.transport import PipeTransport, pipe_pair
from meterledger.simulate.dlms_meter import SimulatedDlmsMeter

T = TypeVar("T")
START = datetime(2024, 1, 1, tzinfo=UTC)
TITLE = bytes.fromhex("4D4C430000000001")


def make_meter(**options: object) -> SimulatedDlmsMeter:
    return SimulatedDlmsMeter("M1", seed=7, start=START, days=1, **options)  # type: ignore[arg-type]


async def serve(
    end: PipeTransport, server: DlmsServer, *, mute: bool = False, delay: float = 0.0
) -> None:
    while data := await end.receive():
        server.receive_data(data)
        while server.next_event() is not NEED_DATA:
            pass
        reply = server.data_to_send()
        if reply and not mute:
            await asyncio.sleep(delay)
            await end.send(reply)


def run(
    meter: SimulatedDlmsMeter,
    server_settings: ServerSettings,
    client_settings: ClientSettings,
    body: Callable[[DlmsSession], Awaitable[T]],
    *,
    mute: bool = False,
    timeout: float = 2.0,
    delay: float = 0.0,
) -> T:
    async def main() -> T:
        ours, theirs = pipe_pair()
        server = DlmsServer(server_settings, meter)
        task = asyncio.create_task(serve(theirs, server, mute=mute, delay=delay))
        try:
            async with DlmsSession(ours, client_settings, timeout=timeout, meter_id="M1") as s:
                return await body(s)
        finally:
            task.cancel()

    return asyncio.run(main())


@pytest.mark.parametrize("framing", ["wrapper", "hdlc"])
def test_clock_register_profile_and_object_list(framing: str) -> None:
    meter = make_meter(clock_drift_s_per_day=30.0)

    async def body(s: DlmsSession) -> tuple[object, ...]:
        clock = await s.read_clock()
        register = await s.read_register("1.0.1.8.0.255")
        profile = await s.read_profile_generic(
            "1.0.99.1.0.255", START + timedelta(hours=1), START + timedelta(hours=2)
        )
        objects = await s.read_object_list()
        return clock, register, profile, objects

    clock, register, profile, objects = run(
        meter,
        ServerSettings(framing=framing),  # type: ignore[arg-type]
        ClientSettings(framing=framing),  # type: ignore[arg-type]
        body,
    )
    assert clock.time.astimezone(UTC) - meter.end == timedelta(seconds=30)  # a day of drift
    assert (register.scaler, register.unit) == (0, 30) and register.raw > 0
    assert profile.capture_period == 900
    assert [o.obis for o in profile.capture_objects][:2] == ["0.0.1.0.0.255", "1.0.1.8.0.255"]
    assert len(profile.rows) == 5  # 01:00 .. 02:00 inclusive
    assert {o.obis for o in objects} >= {"0.0.1.0.0.255", "1.0.99.1.0.255", "1.0.1.8.0.255"}


def test_lls_and_suite_0_with_the_meters_keys() -> None:
    meter = make_meter()
    keys = meter.keys
    server = ServerSettings(
        clients=(ClientPolicy(1, "low", keys.password, "auth-enc"),),
        ek=keys.ek,
        ak=keys.ak,
        system_title=keys.system_title,
        invocation_counters=range(1, 1000),
    )
    client = ClientSettings(
        client_sap=1,
        auth="low",
        password=keys.password,
        security="auth-enc",
        ek=keys.ek,
        ak=keys.ak,
        system_title=TITLE,
        invocation_counters=range(100, 200),
    )

    async def body(s: DlmsSession) -> tuple[int, int | None]:
        register = await s.read_register("1.0.1.8.0.255")
        return register.raw, s.server_counter

    raw, counter = run(meter, server, client, body)
    assert raw > 0 and counter is not None and counter >= 2


def test_wrong_keys_are_e09() -> None:
    meter = make_meter()
    keys = meter.keys
    server = ServerSettings(
        clients=(ClientPolicy(1, "none", None, "auth-enc"),),
        ek=keys.ek,
        ak=keys.ak,
        system_title=keys.system_title,
        invocation_counters=range(1, 1000),
    )
    client = ClientSettings(
        client_sap=1,
        security="auth-enc",
        ek=bytes(16),
        ak=bytes(16),
        system_title=TITLE,
        invocation_counters=range(1, 100),
    )

    async def body(s: DlmsSession) -> None:
        await s.read_clock()

    with pytest.raises(SecurityLevelError) as caught:
        run(meter, server, client, body)
    assert caught.value.code == "E09" and "M1" in str(caught.value)


def test_wrong_password_is_e09() -> None:
    meter = make_meter()
    server = ServerSettings(clients=(ClientPolicy(1, "low", b"12345678"),))
    client = ClientSettings(client_sap=1, auth="low", password=b"wrong")

    async def body(s: DlmsSession) -> None:
        await s.read_clock()

    with pytest.raises(SecurityLevelError):
        run(meter, server, client, body)


@pytest.mark.parametrize("framing", ["wrapper", "hdlc"])
def test_silence_is_e04(framing: str) -> None:
    async def body(s: DlmsSession) -> None:
        await s.read_clock()

    with pytest.raises(ResponseTimeoutError) as caught:
        run(
            make_meter(),
            ServerSettings(framing=framing),  # type: ignore[arg-type]
            ClientSettings(framing=framing),  # type: ignore[arg-type]
            body,
            mute=True,
            timeout=0.05,
        )
    assert caught.value.code == "E04" and caught.value.transient
    assert "M1" in str(caught.value)


def test_unknown_object_is_a_data_access_error_and_the_session_goes_on() -> None:
    async def body(s: DlmsSession) -> int:
        with pytest.raises(MeterDataAccessError) as caught:
            await s.get(3, "1.0.99.99.0.255", 2)
        assert caught.value.code == "E06"
        return (await s.read_register("1.0.1.8.0.255")).raw

    assert run(make_meter(), ServerSettings(), ClientSettings(), body) > 0


def test_a_long_answer_in_blocks_is_not_a_timeout_while_it_flows() -> None:
    """The timeout is silence, not the length of the whole answer: a day of profile in
    small data blocks takes many times the timeout, each block well within it."""

    async def body(s: DlmsSession) -> tuple[int, float]:
        loop = asyncio.get_running_loop()
        began = loop.time()
        rows = await s.read_profile("1.0.99.1.0.255", START, START + timedelta(days=1))
        return len(rows), loop.time() - began

    count, took = run(
        make_meter(),
        ServerSettings(max_pdu=128),
        ClientSettings(),
        body,
        timeout=0.25,
        delay=0.02,
    )
    assert count == 96 and took > 0.25
