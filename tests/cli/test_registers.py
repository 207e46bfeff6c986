"""``meterledger registers import`` and ``registers list`` on a store (each backend): exact
values, every kind of bad row, all or nothing, duplicates and conflicts, the audit entry;
then the register reads at work in VEE: from a file against ingested intervals (the sum
check), and from the DLMS collector (clean data, an outage estimated from the register)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterledger.cli.app import app
from meterledger.cli.collect import StoreLedger
from meterledger.cli.registers import AUDIT_KIND
from meterledger.collect.config import parse_fleet
from meterledger.collect.fleet import FleetCollector, RegisterCounts
from meterledger.core.reading import Quality
from meterledger.core.units import Unit, text_from_milli
from meterledger.simulate.dlms_server import DlmsSimulator, MeterBehaviour, SimulatorConfig
from meterledger.store.base import Store
from support import HEADER, add_meter

runner = CliRunner()
COLUMNS = "meter_id,channel,read_at,value,unit"
IMPORT = "1.0.1.8.0.255"
T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no meterledger.yaml from the repo leaks in
    for name in ("METERLEDGER_DB", "METERLEDGER_CONFIG", "METERLEDGER_DEFAULT_TZ"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def meters(store: Store) -> Store:
    """M1 (electric, UTC) and W1 (water, m3)."""
    add_meter(store, "M1")
    add_meter(store, "W1", service="water", unit="m3")
    return store


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def csv_file(tmp_path: Path, lines: list[str], name: str = "reads.csv") -> Path:
    path = tmp_path / name
    path.write_text(COLUMNS + "\n" + "".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def load(store: Store, path: Path) -> tuple[int, str, str]:
    return invoke("registers", "import", str(path), "--db", store.url, "--json")


def listed(store: Store, *args: str) -> list[dict[str, str]]:
    code, out, err = invoke("registers", "list", "--db", store.url, "--json", *args)
    assert code == 0, err
    result: list[dict[str, str]] = json.loads(out)
    return result


def channel_id(store: Store, meter_id: str, obis: str = IMPORT) -> int:
    (found,) = [
        c.channel_id for c in store.list_channels() if (c.meter_id, c.obis) == (meter_id, obis)
    ]
    return found


def stored(store: Store, meter_id: str, obis: str = IMPORT) -> list[tuple[int, int]]:
    reads = store.register_reads([channel_id(store, meter_id, obis)], -(2**40), 2**40)
    return list(zip(reads.read_at.tolist(), reads.value.tolist(), strict=True))


def epoch(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


GOOD = [
    "M1,1.0.1.8.0.255,2024-03-01T01:00:00+01:00,12345.678,kWh",
    "M1,1.0.1.8.0.255,2024-03-02T00:00:00Z,12360500,Wh",
    "M1,1.0.3.8.0.255,2024-03-01T00:00:00Z,2000,varh",
    "M1,1.0.16.8.0.255,2024-03-01T00:00:00Z,-3.5,kWh",  # a net register may be negative
    "W1,8.0.1.0.0.255,2024-03-01T00:00:00Z,1.5,m3",
]


def test_import_stores_exact_values_and_list_shows_them(meters: Store, tmp_path: Path) -> None:
    code, out, err = load(meters, csv_file(tmp_path, GOOD))
    assert code == 0, err
    assert json.loads(out) == {"rows": 5, "new": 5, "duplicates": 0}
    midnight = epoch("2024-03-01T00:00:00+00:00")
    assert stored(meters, "M1") == [
        (midnight, 12_345_678_000),
        (midnight + 86_400, 12_360_500_000),
    ]
    assert stored(meters, "M1", "1.0.3.8.0.255") == [(midnight, 2_000_000)]
    assert stored(meters, "M1", "1.0.16.8.0.255") == [(midnight, -3_500_000)]
    assert stored(meters, "W1", "8.0.1.0.0.255") == [(midnight, 1_500_000)]  # mL
    source = "file:reads.csv"
    assert listed(meters, "--meter", "M1") == [
        {
            "meter_id": "M1",
            "channel": IMPORT,
            "read_at": "2024-03-01T00:00:00+00:00",
            "value": "12345.678",
            "unit": "kWh",
            "source": source,
        },
        {
            "meter_id": "M1",
            "channel": IMPORT,
            "read_at": "2024-03-02T00:00:00+00:00",
            "value": "12360.5",
            "unit": "kWh",
            "source": source,
        },
        {
            "meter_id": "M1",
            "channel": "1.0.16.8.0.255",
            "read_at": "2024-03-01T00:00:00+00:00",
            "value": "-3.5",
            "unit": "kWh",
            "source": source,
        },
        {
            "meter_id": "M1",
            "channel": "1.0.3.8.0.255",
            "read_at": "2024-03-01T00:00:00+00:00",
            "value": "2",
            "unit": "kvarh",
            "source": source,
        },
    ]
    (water,) = listed(meters, "--meter", "W1")
    assert (water["value"], water["unit"]) == ("1.5", "m3")
    code, out, _ = invoke("registers", "import", str(tmp_path / "reads.csv"), "--db", meters.url)
    assert code == 0 and "nothing new in reads.csv: all 5 read(s) already stored" in out


def test_list_filters_by_channel_and_inclusive_time_bounds(meters: Store, tmp_path: Path) -> None:
    assert load(meters, csv_file(tmp_path, GOOD))[0] == 0

    def times(*args: str) -> list[tuple[str, str]]:
        return [(r["channel"], r["read_at"][:10]) for r in listed(meters, "--meter", "M1", *args)]

    assert times("--channel", "1-0:1.8.0*255") == [(IMPORT, "2024-03-01"), (IMPORT, "2024-03-02")]
    assert times("--channel", IMPORT, "--from", "2024-03-02T00:00:00Z") == [(IMPORT, "2024-03-02")]
    assert times("--channel", IMPORT, "--to", "2024-03-01T00:00:00Z") == [(IMPORT, "2024-03-01")]
    assert times("--from", "2024-03-01T00:00:01Z", "--to", "2024-03-01T23:59:59Z") == []
    assert len(times("--from", "2024-03-01T00:00:00Z", "--to", "2024-03-02T00:00:00Z")) == 4
    code, out, err = invoke("registers", "list", "--meter", "M1", "--db", meters.url)
    assert code == 0 and "12345.678" in out and "4 register read(s) of M1" in err
    for args, message in [
        (["--meter", "M9"], "no meter M9"),
        (["--meter", "M1", "--channel", "8.0.1.0.0.255"], "has no channel 8.0.1.0.0.255"),
        (["--meter", "M1", "--channel", "bad"], "not an OBIS code"),
        (["--meter", "M1", "--from", "2024-03-02T00:00:00Z", "--to", "2024-03-01T00:00:00Z"],
         "--to must not be before --from"),
    ]:  # fmt: skip
        code, _, err = invoke("registers", "list", *args, "--db", meters.url)
        assert code == 2 and message in err, (args, err)


GOOD_ROW = "M1,1.0.1.8.0.255,2024-03-01T00:00:00Z,100,kWh"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("M9,1.0.1.8.0.255,2024-03-01T00:15:00Z,1,kWh", "unknown meter 'M9'"),
        ("M1,8.0.1.0.0.255,2024-03-01T00:15:00Z,1,kWh", "meter M1 has no channel 8.0.1.0.0.255"),
        ("M1,1.0.1.8,2024-03-01T00:15:00Z,1,kWh", "channel '1.0.1.8': not an OBIS code"),
        ("M1,1.0.1.8.0.255,2024-13-01T00:15:00Z,1,kWh", "read_at: not an ISO-8601 timestamp"),
        ("M1,1.0.1.8.0.255,2024-03-01T00:15:00,1,kWh", "read_at: timestamp has no UTC offset"),
        ("M1,1.0.1.8.0.255,2024-03-01T00:15:00.5Z,1,kWh", "has a sub-second part"),
        ("M1,1.0.1.8.0.255,2999-01-01T00:00:00Z,1,kWh", "read_at 2999-01-01T00:00:00Z is in the"),
        ("M1,1.0.1.8.0.255,2024-03-01T00:15:00Z,1,kW", "unknown unit 'kW' (one of Wh, kWh"),
        ("M1,1.0.1.8.0.255,2024-03-01T00:15:00Z,1,kvarh", "unit kvarh is not a unit of Wh"),
        ("W1,8.0.1.0.0.255,2024-03-01T00:15:00Z,1,kWh", "unit kWh is not a unit of L"),
        ("M1,1.0.1.8.0.255,2024-03-01T00:15:00Z,1e3,kWh", "not a plain decimal number: '1e3'"),
        ("M1,1.0.1.8.0.255,2024-03-01T00:15:00Z,,kWh", "not a plain decimal number: ''"),
        ("M1,1.0.1.8.0.255,2024-03-01T00:15:00Z,1.0000001,kWh", "finer than one milli-Wh"),
        ("M1,1.0.1.8.0.255,2024-03-01T00:15:00Z,-1,kWh", "a register of 1.0.1.8.0.255 is not"),
        ("M1,1.0.1.8.0.255,2024-03-01T00:15:00Z,1", "expected 5 fields, got 4"),
        ("M1,1.0.1.8.0.255,2024-03-01T00:15:00Z,1,5,kWh", "expected 5 fields, got 6"),
        ("M1,1.0.1.8.0.255,2024-03-01T00:00:00Z,101,kWh", "has another value on line 2"),
    ],
)
def test_a_bad_row_is_named_and_nothing_is_written(
    meters: Store, tmp_path: Path, row: str, message: str
) -> None:
    entries = len(list(meters.audit_rows()))
    code, out, err = load(meters, csv_file(tmp_path, [GOOD_ROW, row]))
    assert code == 2 and out == ""
    assert "reads.csv: 1 bad row(s), nothing was imported" in err
    assert "line 3: " in err and message in err and "line 2:" not in err
    assert meters.count("register_reads") == 0
    assert len(list(meters.audit_rows())) == entries


def test_every_bad_row_is_listed_with_every_problem(meters: Store, tmp_path: Path) -> None:
    lines = [
        GOOD_ROW,
        "M9,1.0.1.8.0.255,yesterday,1,kWh",
        "M1,1.0.1.8.0.255,2024-03-01T00:30:00Z,200,kWh",
        "M1,1.0.1.8.0.255,2024-03-01T00:45:00Z,x,Wh",
    ]
    code, _, err = load(meters, csv_file(tmp_path, lines))
    assert code == 2
    assert "2 bad row(s), nothing was imported" in err
    assert "line 3: unknown meter 'M9'; read_at: not an ISO-8601 timestamp: 'yesterday'" in err
    assert "line 5: value: not a plain decimal number: 'x'" in err
    assert "line 2:" not in err and "line 4:" not in err
    assert meters.count("register_reads") == 0


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no header"),
        ("meter_id,channel,read_at,value\n", "the header must name the columns"),
        ("meter,channel,read_at,value,unit\n", "got meter,channel,read_at,value,unit"),
        (b"\xff\xfe".decode("latin-1"), "not UTF-8"),
    ],
)
def test_a_file_without_the_header_is_refused(
    meters: Store, tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "reads.csv"
    path.write_text(content, encoding="latin-1" if "\xff" in content else "utf-8")
    code, _, err = load(meters, path)
    assert code == 2 and message in err


def test_columns_in_any_order_and_a_missing_file(meters: Store, tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text(
        "\ufeffunit,value,read_at,channel,meter_id\nkWh,7,2024-03-01T00:00:00Z,1.0.1.8.0.255,M1\n"
    )
    code, out, err = load(meters, path)
    assert code == 0, err
    assert json.loads(out)["new"] == 1 and stored(meters, "M1") == [
        (epoch("2024-03-01T00:00:00+00:00"), 7_000_000)
    ]
    code, _, err = load(meters, tmp_path / "absent.csv")
    assert code == 2 and "cannot read" in err and "absent.csv" in err


def test_duplicates_are_no_ops_and_a_conflict_writes_nothing(meters: Store, tmp_path: Path) -> None:
    first = csv_file(tmp_path, GOOD[:2], "first.csv")
    assert json.loads(load(meters, first)[1]) == {"rows": 2, "new": 2, "duplicates": 0}
    entries = len(list(meters.audit_rows()))
    assert json.loads(load(meters, first)[1]) == {"rows": 2, "new": 0, "duplicates": 2}
    assert len(list(meters.audit_rows())) == entries  # nothing new: no entry either
    overlap = csv_file(
        tmp_path, [GOOD[1], GOOD[1], "M1,1.0.1.8.0.255,2024-03-03T00:00:00Z,12370,kWh"], "b.csv"
    )
    assert json.loads(load(meters, overlap)[1]) == {"rows": 3, "new": 1, "duplicates": 2}
    assert meters.count("register_reads") == 3
    clash = csv_file(
        tmp_path,
        [
            "M1,1.0.1.8.0.255,2024-03-04T00:00:00Z,12380,kWh",  # new, but not written
            "M1,1.0.1.8.0.255,2024-03-01T00:00:00Z,12345.679,kWh",
        ],
        "clash.csv",
    )
    entries = len(list(meters.audit_rows()))
    code, out, err = load(meters, clash)
    assert code == 2 and out == ""
    assert "clash.csv: 1 register read(s) differ from the stored ones" in err
    assert (
        "line 3: M1 1.0.1.8.0.255 at 2024-03-01T00:00:00+00:00 is stored as 12345.678 kWh; the "
        "file says 12345.679 kWh"
    ) in err
    assert meters.count("register_reads") == 3
    assert len(list(meters.audit_rows())) == entries
    assert [r["source"] for r in listed(meters, "--meter", "M1")] == [
        "file:first.csv",
        "file:first.csv",
        "file:b.csv",
    ]


def test_each_import_is_an_entry_on_the_audit_chain(meters: Store, tmp_path: Path) -> None:
    path = csv_file(tmp_path, [*GOOD, GOOD[0]])
    assert json.loads(load(meters, path)[1]) == {"rows": 6, "new": 5, "duplicates": 1}
    entry = list(meters.audit_rows())[-1]
    assert (entry.kind, entry.subject) == (AUDIT_KIND, "file:reads.csv")
    assert json.loads(entry.payload) == {
        "file": "reads.csv",
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "rows": 6,
        "new": 5,
        "duplicates": 1,
        "channels": 4,
        "first_read_at": "2024-03-01T00:00:00+00:00",
        "last_read_at": "2024-03-02T00:00:00+00:00",
    }
    code, out, err = invoke("audit", "verify", "--db", meters.url, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True and report["entries"] == entry.seq


# -- the sum check on intervals from a file ---------------------------------------------


def _interval_wh(i: int) -> int:
    """Wh of quarter-hour ``i`` of the day: a ramp, no two neighbours alike."""
    return 200 + 7 * (i % 48) + 3 * (i % 5)


def test_an_imported_read_that_disagrees_with_the_intervals_is_a_sum_check(
    meters: Store, tmp_path: Path
) -> None:
    lines = [HEADER]
    for i in range(1, 2 * 96 + 1):
        end = T0 + timedelta(minutes=15 * i)
        lines.append(f"M1,{IMPORT},{end.isoformat()},900,{_interval_wh(i)},Wh,actual")
    (tmp_path / "intervals.csv").write_text("\n".join(lines) + "\n")
    code, _, err = invoke("ingest", str(tmp_path / "intervals.csv"), "--db", meters.url)
    assert code == 0, err
    start = 5_000_000  # Wh on the register at T0
    noon = start + sum(_interval_wh(i) for i in range(1, 49))
    day = start + sum(_interval_wh(i) for i in range(1, 97))
    agree = csv_file(
        tmp_path,
        [
            f"M1,{IMPORT},2024-03-01T00:00:00Z,{start},Wh",
            f"M1,{IMPORT},2024-03-01T12:00:00Z,{noon},Wh",
            f"M1,{IMPORT},2024-03-02T00:00:00Z,{day + 400},Wh",  # off by 0.4 kWh: tolerated
        ],
        "agree.csv",
    )
    assert load(meters, agree)[0] == 0

    def sum_checks() -> list[dict[str, object]]:
        code, out, err = invoke("vee", "run", "--meter", "M1", "--db", meters.url, "--json")
        assert code == 0, err
        code, out, err = invoke(
            "anomalies", "list", "--meter", "M1", "--rule", "SUM_CHECK", "--db", meters.url,
            "--json",
        )  # fmt: skip
        assert code == 0, err
        found: list[dict[str, object]] = json.loads(out)
        return found

    assert sum_checks() == []
    evening = day + 400 + sum(_interval_wh(i) for i in range(97, 169)) + 1_500  # 1.5 kWh over
    late = csv_file(tmp_path, [f"M1,{IMPORT},2024-03-02T18:00:00Z,{evening},Wh"], "late.csv")
    assert load(meters, late)[0] == 0
    (finding,) = sum_checks()
    assert finding["interval_end"] == "2024-03-02T18:00:00+00:00"
    assert finding["severity"] == "warn" and finding["channel"] == IMPORT
    detail = str(finding["detail"])
    assert "between register reads at 2024-03-02 00:00 and 2024-03-02 18:00 local" in detail
    assert "off by" in detail and "tolerance 2% or" in detail


# -- register reads from the DLMS collector ---------------------------------------------


def test_collected_register_reads_feed_vee(meters: Store, tmp_path: Path) -> None:
    """Two simulated meters read over loopback TCP for two days, MTR-00001 with a two-hour
    outage on the second: a register read at every captured interval end; VEE finds no sum
    check on the clean data and fills the outage from the register delta, exactly."""
    store = meters
    for meter_id in ("MTR-00001", "MTR-00002"):
        add_meter(store, meter_id, capacity=1_000_000_000)
    now = T0 + timedelta(days=2)
    outage = (T0 + timedelta(days=1, hours=10), T0 + timedelta(days=1, hours=12))

    async def collect() -> RegisterCounts:
        config = SimulatorConfig(
            meters=2,
            port=0,
            start=T0,
            days=2,
            tz="UTC",
            clock=lambda: now,
            overrides={0: MeterBehaviour(outages=(outage,))},
        )
        async with DlmsSimulator(config) as sim:
            fleet = parse_fleet(
                {
                    "collector": {"attempts": 1, "lookback_hours": 48},
                    "defaults": {
                        "host": "127.0.0.1",
                        "port": sim.port,
                        "timeout": 2,
                        "timezone": "UTC",
                    },
                    "meters": [
                        {"meter_id": "MTR-00001", "server_sap": 1},
                        {"meter_id": "MTR-00002", "server_sap": 2},
                    ],
                }
            )
            ledger = StoreLedger(store, now=lambda: now)
            collector = FleetCollector(fleet, ledger, clock=now.timestamp, force=True)
            run = await collector.run()
        assert [r.ok for r in run.results] == [True, True]
        return run.registers

    counts = asyncio.run(collect())
    clean, outaged = stored(store, "MTR-00002"), stored(store, "MTR-00001")
    # every quarter-hour of the two days on the clean meter; none inside the outage
    assert [t for t, _ in clean] == list(
        range(epoch("2024-03-01T00:15:00+00:00"), int(now.timestamp()) + 1, 900)
    )
    lost = range(int(outage[0].timestamp()) + 900, int(outage[1].timestamp()) + 1, 900)
    assert [t for t, _ in outaged] == [t for t, _ in clean if t not in lost]
    assert counts == RegisterCounts(reads=len(clean) + len(outaged), new=len(clean) + len(outaged))
    sources = {r["source"] for m in ("MTR-00001", "MTR-00002") for r in listed(store, "--meter", m)}
    assert sources == {"dlms"}

    code, out, err = invoke("vee", "run", "--db", store.url, "--json")
    assert code == 0, err
    assert "SUM_CHECK" not in json.loads(out)["by_rule"]
    # the outage: 8 rows lost and the next one's interval unknown; the register reads
    # around it say how much went through, and the estimates share exactly that
    before, after = dict(outaged)[lost[0] - 900], dict(outaged)[lost[-1] + 900]
    gap = store.readings("MTR-00001", lost[0] - 900, lost[-1] + 900, IMPORT)
    assert gap.height == len(lost) + 1
    assert set(gap.get_column("quality").to_list()) == {Quality.ESTIMATED | Quality.EST_REGISTER}
    assert sum(gap.get_column("value").to_list()) == after - before

    # a file that contradicts the meter's own read is refused; one that agrees is a no-op
    at, value = clean[10]
    when = datetime.fromtimestamp(at, UTC).isoformat()
    other = text_from_milli(value + 1, Unit.WH)
    code, _, err = load(store, csv_file(tmp_path, [f"MTR-00002,{IMPORT},{when},{other},Wh"]))
    assert code == 2 and "differ from the stored ones" in err
    assert stored(store, "MTR-00002")[10] == (at, value)
    same = text_from_milli(value, Unit.WH)
    code, out, _ = load(store, csv_file(tmp_path, [f"MTR-00002,{IMPORT},{when},{same},Wh"]))
    assert code == 0 and json.loads(out) == {"rows": 1, "new": 0, "duplicates": 1}
