"""The DLMS simulator end to end: real loopback TCP, driven by our own sans-IO client."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from meterledger.cli import simulate as simulate_cli
from meterledger.codec.dlms.apdu_selective import range_access
from meterledger.codec.dlms.client import (
    ActionCompleted,
    Associated,
    ClientEvent,
    ClientSettings,
    DlmsClient,
    GetFailed,
    GetResult,
    Released,
)
from meterledger.codec.dlms.codes import ActionResult, DataAccessResult
from meterledger.codec.dlms.cosem import clock_value, parse_buffer, parse_object_list
from meterledger.codec.dlms.cursor import _NeedDataType
from meterledger.codec.dlms.errors import SecurityError
from meterledger.codec.dlms.keywrap import KeyId, key_transfer_data, wrap_keys
from meterledger.codec.dlms.wrapper import encode_wrapper
from meterledger.simulate.dlms_meter import (
    CLOCK,
    IMPORT_REGISTER,
    LOAD_PROFILE,
    SECURITY_SETUP,
    keys_for,
)
from meterledger.simulate.dlms_server import (
    DlmsSimulator,
    Framing,
    MeterBehaviour,
    SecurityMode,
    SimulatorConfig,
    logical_address,
)

SEED = 11
START = datetime(2024, 3, 1, 5, 0, tzinfo=UTC)  # local midnight in New York (EST)
NOW = START + timedelta(days=2)  # the profile's end: both days captured
TIMEOUT = 5.0


def config(**kwargs: Any) -> SimulatorConfig:
    options: dict[str, Any] = {
        "meters": 3,
        "seed": SEED,
        "port": 0,
        "days": 2,
        "start": START,
        "clock": lambda: NOW,
    }
    options.update(kwargs)
    return SimulatorConfig(**options)


class Peer:
    """A DlmsClient on an asyncio stream."""

    def __init__(
        self, client: DlmsClient, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.client, self.reader, self.writer = client, reader, writer

    async def exchange(self, request: bytes) -> ClientEvent:
        """Send ``request``, pump bytes until the client reports something."""
        self.writer.write(request)
        await self.writer.drain()
        while True:
            data = await self.reader.read(65536)
            assert data, "the simulator closed the connection"
            self.client.receive_data(data)
            event = self.client.next_event()
            follow_up = self.client.data_to_send()
            if follow_up:
                self.writer.write(follow_up)
                await self.writer.drain()
            if not isinstance(event, _NeedDataType):
                return event

    async def get(self, class_id: int, obis: bytes, attribute: int, **kw: Any) -> ClientEvent:
        return await self.exchange(self.client.get(class_id, obis, attribute, **kw))


@asynccontextmanager
async def connect(port: int, settings: ClientSettings) -> AsyncIterator[Peer]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Peer(DlmsClient(settings), reader, writer)
    finally:
        writer.close()


def management(meter_index: int, *, framing: str = "wrapper", **kw: Any) -> ClientSettings:
    """HLS-GMAC and suite 0 with the keys the simulator documents for the meter."""
    keys = keys_for(meter_index, SEED)
    options: dict[str, Any] = {
        "framing": framing,
        "client_sap": 1,
        "server_logical": logical_address(meter_index),
        "auth": "hls-gmac",
        "security": "auth-enc",
        "ek": keys.ek,
        "ak": keys.ak,
        "system_title": b"HEADEND1",
        "challenge": b"0123456789abcdef",
        "invocation_counters": itertools.count(1),
    }
    options.update(kw)
    return ClientSettings(**options)


def run(coroutine: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coroutine, 30))


def test_public_client_reads_clock_register_and_profile_with_blocks() -> None:
    async def scenario() -> None:
        async with DlmsSimulator(config()) as sim:
            settings = ClientSettings(server_logical=logical_address(2), max_receive_pdu=512)
            async with connect(sim.port, settings) as peer:
                assert isinstance(await peer.exchange(peer.client.start()), Associated)
                clock = await peer.get(8, CLOCK, 2)
                assert isinstance(clock, GetResult)
                assert clock_value(clock.value).time == NOW
                register = await peer.get(3, IMPORT_REGISTER, 2)
                assert isinstance(register, GetResult)
                meter = sim.meter(2)
                assert register.value.value == meter.register_wh(IMPORT_REGISTER)
                day_one = range_access(START + timedelta(minutes=15), START + timedelta(days=1))
                profile = await peer.get(7, LOAD_PROFILE, 2, selective=day_one)
                assert isinstance(profile, GetResult)
                rows = parse_buffer(profile.value)
                assert len(rows) == 96  # far beyond 512 octets: block transfer did it
                assert rows[-1][1].value == meter.profile.import_total[96]
                released = await peer.exchange(peer.client.release())
                assert isinstance(released, Released)
            assert sim.stats["responses"] > 6

    run(scenario())


def test_hls_with_suite_0_in_both_ciphering_styles() -> None:
    async def scenario() -> None:
        async with DlmsSimulator(config(security=SecurityMode.HLS_AUTH_ENC)) as sim:
            counters = itertools.count(1)  # never reused, across connections too
            for style in ("glo", "general-glo"):
                settings = management(1, ciphering=style, invocation_counters=counters)
                async with connect(sim.port, settings) as peer:
                    opened = await peer.exchange(peer.client.start())
                    assert isinstance(opened, Associated)
                    assert opened.server_system_title == keys_for(1, SEED).system_title
                    objects = await peer.get(15, bytes((0, 0, 40, 0, 0, 255)), 2)
                    assert isinstance(objects, GetResult)
                    assert len(parse_object_list(objects.value)) == 8
                    profile = await peer.get(7, LOAD_PROFILE, 2)
                    assert isinstance(profile, GetResult)
                    assert len(parse_buffer(profile.value)) == 192
                    peer.client.release()  # leave without waiting: the next one reconnects

    run(scenario())


def test_public_client_is_limited_when_security_is_on() -> None:
    async def scenario() -> None:
        async with (
            DlmsSimulator(config(security=SecurityMode.HLS_AUTH_ENC)) as sim,
            connect(sim.port, ClientSettings(server_logical=1)) as peer,
        ):
            assert isinstance(await peer.exchange(peer.client.start()), Associated)
            assert isinstance(await peer.get(8, CLOCK, 2), GetResult)
            refused = await peer.get(7, LOAD_PROFILE, 2)
            assert refused == GetFailed(refused.invoke_id, DataAccessResult.READ_WRITE_DENIED)  # type: ignore[union-attr]

    run(scenario())


def test_lls_password_from_the_key_derivation() -> None:
    async def scenario() -> None:
        async with DlmsSimulator(config(security=SecurityMode.LLS)) as sim:
            password = keys_for(0, SEED).password
            settings = ClientSettings(client_sap=1, server_logical=1, auth="low", password=password)
            async with connect(sim.port, settings) as peer:
                assert isinstance(await peer.exchange(peer.client.start()), Associated)
            wrong = replace(settings, password=b"not-it")
            async with connect(sim.port, wrong) as peer:
                with pytest.raises(SecurityError):
                    await peer.exchange(peer.client.start())

    run(scenario())


def test_wrong_key_meter_is_a_security_error() -> None:
    async def scenario() -> None:
        behaviour = {2: MeterBehaviour(wrong_keys=True)}
        cfg = config(security=SecurityMode.HLS_AUTH_ENC, overrides=behaviour)
        async with DlmsSimulator(cfg) as sim:
            async with connect(sim.port, management(2)) as peer:
                with pytest.raises(SecurityError):
                    await peer.exchange(peer.client.start())
            async with connect(sim.port, management(1)) as peer:  # its neighbour is fine
                assert isinstance(await peer.exchange(peer.client.start()), Associated)

    run(scenario())


def test_silent_meter_times_out_and_others_answer() -> None:
    async def scenario() -> None:
        cfg = config(overrides={1: MeterBehaviour(silent=True)})
        async with DlmsSimulator(cfg) as sim:
            async with connect(sim.port, ClientSettings(server_logical=2)) as peer:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(peer.exchange(peer.client.start()), 0.5)
            async with connect(sim.port, ClientSettings(server_logical=3)) as peer:
                assert isinstance(await peer.exchange(peer.client.start()), Associated)
            assert sim.stats["dropped"] == 1

    run(scenario())


def test_unknown_logical_device_gets_no_answer() -> None:
    async def scenario() -> None:
        async with (
            DlmsSimulator(config()) as sim,
            connect(sim.port, ClientSettings(server_logical=4)) as peer,
        ):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(peer.exchange(peer.client.start()), 0.3)

    run(scenario())


def test_response_delay_is_applied() -> None:
    async def scenario() -> None:
        cfg = config(behaviour=MeterBehaviour(delay=(0.2, 0.2)))
        async with (
            DlmsSimulator(cfg) as sim,
            connect(sim.port, ClientSettings(server_logical=1)) as peer,
        ):
            loop = asyncio.get_running_loop()
            began = loop.time()
            assert isinstance(await peer.exchange(peer.client.start()), Associated)
            assert loop.time() - began >= 0.19

    run(scenario())


def test_clock_drift_reaches_the_client() -> None:
    async def scenario() -> None:
        cfg = config(overrides={0: MeterBehaviour(clock_drift_s_per_day=30.0)})
        async with (
            DlmsSimulator(cfg) as sim,
            connect(sim.port, ClientSettings(server_logical=1)) as peer,
        ):
            await peer.exchange(peer.client.start())
            clock = await peer.get(8, CLOCK, 2)
            assert isinstance(clock, GetResult)
            assert clock_value(clock.value).time == NOW + timedelta(seconds=60)

    run(scenario())


def test_hdlc_over_tcp_with_segmentation() -> None:
    async def scenario() -> None:
        cfg = config(framing=Framing.HDLC, security=SecurityMode.HLS_AUTH_ENC)
        async with (
            DlmsSimulator(cfg) as sim,
            connect(sim.port, management(0, framing="hdlc")) as peer,
        ):
            assert isinstance(await peer.exchange(peer.client.start()), Associated)
            profile = await peer.get(7, LOAD_PROFILE, 2)
            assert isinstance(profile, GetResult)
            assert len(parse_buffer(profile.value)) == 192

    run(scenario())


def test_one_connection_reaches_two_meters_by_wport() -> None:
    async def scenario() -> None:
        async with DlmsSimulator(config()) as sim:
            reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
            peers = [
                Peer(DlmsClient(ClientSettings(server_logical=address)), reader, writer)
                for address in (1, 3)
            ]
            titles = []
            for peer in peers:
                assert isinstance(await peer.exchange(peer.client.start()), Associated)
                serial = await peer.get(1, bytes((0, 0, 96, 1, 0, 255)), 2)
                assert isinstance(serial, GetResult)
                titles.append(serial.value.value)
            assert titles == [b"MTR-00001", b"MTR-00003"]
            writer.close()

    run(scenario())


def test_replayed_counter_is_refused_across_connections() -> None:
    async def scenario() -> None:
        async with DlmsSimulator(config(security=SecurityMode.HLS_AUTH_ENC)) as sim:
            async with connect(sim.port, management(0)) as peer:
                assert isinstance(await peer.exchange(peer.client.start()), Associated)
                assert isinstance(await peer.get(8, CLOCK, 2), GetResult)
            # Same counters again: the AARQ's glo-initiateRequest reuses counter 1.
            async with connect(sim.port, management(0)) as peer:
                with pytest.raises(SecurityError):
                    await peer.exchange(peer.client.start())

    run(scenario())


def test_close_ends_open_connections() -> None:
    async def scenario() -> None:
        sim = DlmsSimulator(config())
        await sim.start_serving()
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        writer.write(encode_wrapper(16, 1, b""))  # a PDU the server answers with nothing
        await writer.drain()
        await sim.close()
        # Closed with our bytes unread, the end may come as a reset: it ends it too.
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""

    run(scenario())


def test_key_transfer_then_the_new_keys_associate() -> None:
    async def scenario() -> None:
        async with DlmsSimulator(config(security=SecurityMode.HLS_AUTH_ENC)) as sim:
            old = keys_for(0, SEED)
            new_ek, new_ak = bytes(range(16)), bytes(range(16, 32))
            wrapped = wrap_keys(
                old.kek,
                [(KeyId.GLOBAL_UNICAST_ENCRYPTION, new_ek), (KeyId.AUTHENTICATION, new_ak)],
            )
            reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
            peer = Peer(DlmsClient(management(0)), reader, writer)
            assert isinstance(await peer.exchange(peer.client.start()), Associated)
            request = peer.client.action(64, SECURITY_SETUP, 2, key_transfer_data(wrapped))
            done = await peer.exchange(request)
            assert isinstance(done, ActionCompleted) and done.result is ActionResult.SUCCESS
            assert isinstance(await peer.exchange(peer.client.release()), Released)
            # The next association, on the same connection, needs the new keys.
            fresh = Peer(DlmsClient(management(0, ek=new_ek, ak=new_ak)), reader, writer)
            assert isinstance(await fresh.exchange(fresh.client.start()), Associated)
            assert isinstance(await fresh.get(8, CLOCK, 2), GetResult)
            writer.close()
            async with connect(sim.port, management(0)) as stale:
                with pytest.raises(SecurityError):
                    await stale.exchange(stale.client.start())

    run(scenario())


def test_dropped_responses_time_out() -> None:
    async def scenario() -> None:
        cfg = config(behaviour=MeterBehaviour(drop_rate=1.0))
        async with DlmsSimulator(cfg) as sim:
            async with connect(sim.port, ClientSettings(server_logical=1)) as peer:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(peer.exchange(peer.client.start()), 0.3)
            assert sim.stats == {"connections": 1, "responses": 0, "dropped": 1}

    run(scenario())


def test_cli_serves_prints_and_writes_a_fleet_file(tmp_path: Path) -> None:
    root = typer.Typer()
    root.add_typer(simulate_cli.app, name="simulate")
    root.command("noop")(lambda: None)
    fleet = tmp_path / "fleet.yaml"
    args = ["simulate", "dlms", "--port", "0", "--meters", "4", "--security", "--json"]
    args += ["--wrong-keys", "3", "--fleet-file", str(fleet), "--duration", "0.2"]
    result = CliRunner().invoke(root, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["port"] > 0 and summary["meters"] == 4
    assert summary["security"] == "hls-auth-enc"
    written = yaml.safe_load(fleet.read_text("utf-8"))
    assert written["defaults"]["client_sap"] == 1
    assert [m["server_sap"] for m in written["meters"]] == [1, 2, 3, 4]
    assert written["meters"][3]["ek"] == "hex:" + keys_for(3, 1).ek.hex().upper()
    bad = CliRunner().invoke(root, ["simulate", "dlms", "--delay-ms", "soon"])
    assert bad.exit_code == 2
