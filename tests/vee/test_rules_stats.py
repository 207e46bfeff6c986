"""The statistical rules (spike, high and low usage, multiplier mismatch, z-score and IQR
outliers) on hand-made series with exact findings."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from meterledger.core.reading import Quality
from meterledger.vee import rules_stats
from meterledger.vee.findings import Context
from meterledger.vee.series import Registers, Series, offsets_of
from vee_support import EXPORT, IMPORT, KWH, Q, at, context, found, run, series_of

NY = "America/New_York"


@dataclass
class Chan:
    """Quarter-hours from local midnight of ``first`` for ``days`` local days; ``value``
    gives each interval's value from its index and its start as a local datetime. Rows
    starting before local ``checked`` (default: the last day) are history."""

    first: date
    days: int
    value: Callable[[int, datetime], int]
    tz: str = "UTC"
    obis: str = IMPORT
    checked: date | None = None
    quality: Callable[[int, datetime], int] | None = None

    def rows(self) -> tuple[list[int], list[int], list[int], int]:
        zone = ZoneInfo(self.tz)
        lo = int(
            datetime(self.first.year, self.first.month, self.first.day, tzinfo=zone).timestamp()
        )
        stop = self.first + timedelta(days=self.days)
        hi = int(datetime(stop.year, stop.month, stop.day, tzinfo=zone).timestamp())
        checked = self.checked or stop - timedelta(days=1)
        ends, values, flags, history = [], [], [], 0
        for i, begin in enumerate(range(lo, hi, Q)):
            local = datetime.fromtimestamp(begin, UTC).astimezone(zone)
            ends.append(begin + Q)
            values.append(self.value(i, local))
            flags.append(self.quality(i, local) if self.quality else 0)
            history += local.date() < checked
        return ends, values, flags, history


def build(*chans: Chan) -> Series:
    parts = [c.rows() for c in chans]
    return series_of(
        [(p[0], p[1], p[2]) for p in parts],
        obis=[c.obis for c in chans],
        tz=[c.tz for c in chans],
        check_from=[p[0][p[3] - 1] if p[3] else 0 for p in parts],
        check_to=[p[0][-1] if p[0] else 0 for p in parts],
    )


def flat(mwh: int) -> Callable[[int, datetime], int]:
    return lambda i, t: mwh


def on(day: date, mwh: int, other: int = 250_000) -> Callable[[int, datetime], int]:
    """``mwh`` per interval on local ``day``, ``other`` on every other day."""
    return lambda i, t: mwh if t.date() == day else other


MAR2, MAR8 = date(2026, 3, 2), date(2026, 3, 8)


def test_defaults_name_every_rule_and_a_spike_is_held() -> None:
    assert list(rules_stats.RULES) == [
        "SPIKE",
        "HIGH_USAGE",
        "LOW_USAGE",
        "MULTIPLIER_MISMATCH",
        "OUTLIER_ZSCORE",
        "OUTLIER_IQR",
    ]
    # a spike would set a demand charge and inflate the energy: held until reviewed
    assert rules_stats.DEFAULTS["SPIKE"]["severity"] == "fail"
    assert {d["severity"] for c, d in rules_stats.DEFAULTS.items() if c != "SPIKE"} == {"warn"}


def _spiky(
    day: date, spikes: dict[int, int], base: int = 500_000
) -> Callable[[int, datetime], int]:
    """``base`` everywhere, ``spikes`` (index within ``day`` → value) on that day."""

    def value(i: int, t: datetime) -> int:
        if t.date() != day:
            return base
        index = (t.hour * 3600 + t.minute * 60) // Q
        return spikes.get(index, base)

    return value


def test_spike_against_the_third_highest_of_the_day() -> None:
    s = build(Chan(MAR2, 1, _spiky(MAR2, {57: 12_400_000, 20: 1_200_000, 70: 1_100_000})))
    assert found(run("SPIKE", s)) == [
        (
            0,
            at("2026-03-02T14:30"),
            "spike 12.400 kWh at 2026-03-02 14:15 vs 3rd-highest 1.100 kWh of the day (ratio 11.3)",
        )
    ]


def test_a_two_interval_peak_is_two_spikes_but_a_modest_peak_is_none() -> None:
    s = build(
        Chan(MAR2, 1, _spiky(MAR2, {40: 9_000_000, 41: 9_000_000})),
        Chan(MAR2, 1, _spiky(MAR2, {40: 1_800_000, 41: 1_000_000})),  # ratio 3.6
    )
    hits = run("SPIKE", s)
    # both intervals of the two-interval peak stand far above the third-highest
    assert hits.row_channel.tolist() == [0, 0]
    assert hits.interval_end.tolist() == [at("2026-03-02T10:15"), at("2026-03-02T10:30")]


def test_spike_at_low_load_below_the_floor_does_not_fire() -> None:
    s = build(Chan(MAR2, 1, _spiky(MAR2, {50: 900_000}, base=10_000)))  # ratio 90, 0.89 kWh
    assert len(run("SPIKE", s)) == 0
    assert len(run("SPIKE", s, floor_mwh=500_000)) == 1


def test_spike_on_the_23_hour_dst_day_in_local_time() -> None:
    def value(i: int, t: datetime) -> int:
        return 6 * KWH if (t.hour, t.minute) == (3, 15) else 400_000

    s = build(Chan(MAR8, 1, value, tz=NY))
    assert len(s.value) == 92
    assert found(run("SPIKE", s)) == [
        (
            0,
            at("2026-03-08T03:30", NY),
            "spike 6.000 kWh at 2026-03-08 03:15 vs 3rd-highest 0.400 kWh of the day (ratio 15.0)",
        )
    ]


def test_spike_in_a_history_day_is_not_reported() -> None:
    s = build(Chan(MAR2, 2, _spiky(MAR2, {57: 12_400_000})))
    assert len(run("SPIKE", s)) == 0


def test_high_usage_against_the_average_of_the_days_before() -> None:
    s = build(Chan(date(2026, 2, 1), 36, on(MAR8, 800_000)))  # 76.8 vs 24 kWh
    assert found(run("HIGH_USAGE", s)) == [
        (
            0,
            at("2026-03-09T00:00"),
            "high usage on Sun 2026-03-08: 76.800 kWh vs average 24.000 kWh a day (ratio 3.20)",
        )
    ]
    assert len(run("LOW_USAGE", s)) == 0
    assert len(run("MULTIPLIER_MISMATCH", s)) == 0


def test_low_usage_on_the_23_hour_dst_day_counts_it_as_complete() -> None:
    s = build(Chan(date(2026, 2, 1), 36, on(MAR8, 50_000), tz=NY))  # 92 × 50 Wh
    assert found(run("LOW_USAGE", s)) == [
        (
            0,
            at("2026-03-09T00:00", NY),
            "low usage on Sun 2026-03-08: 4.600 kWh vs average 24.000 kWh a day (ratio 0.19)",
        )
    ]
    assert len(run("HIGH_USAGE", s)) == 0


def test_the_25_hour_dst_day_is_a_complete_day_of_100_intervals() -> None:
    s = build(Chan(date(2026, 10, 1), 32, flat(250_000), tz=NY))  # 2026-11-01: 25 kWh
    assert s.value[-100:].sum() == 25 * KWH
    assert len(run("HIGH_USAGE", s, high_factor=1.1)) == 0
    assert found(run("LOW_USAGE", s, low_factor=1.05)) == [  # LOW needs a whole day
        (
            0,
            at("2026-11-02T00:00", NY),
            "low usage on Sun 2026-11-01: 25.000 kWh vs average 24.000 kWh a day (ratio 1.04)",
        )
    ]


def test_a_day_off_by_a_power_of_ten_is_a_multiplier_mismatch_not_high_or_low() -> None:
    high = build(Chan(date(2026, 2, 1), 36, on(MAR8, 2_500_000)))
    low = build(Chan(date(2026, 2, 1), 36, on(MAR8, 25_000)))
    for s, total, ratio in ((high, "240.000", "10"), (low, "2.400", "0.1")):
        assert len(run("HIGH_USAGE", s)) == 0
        assert len(run("LOW_USAGE", s)) == 0
        assert found(run("MULTIPLIER_MISMATCH", s)) == [
            (
                0,
                at("2026-03-09T00:00"),
                f"usage on Sun 2026-03-08: {total} kWh vs 24.000 kWh on the same weekday before:"
                f" ratio {ratio}, a power of ten (multiplier or unit mismatch)",
            )
        ]


def test_a_business_sunday_times_ten_is_judged_against_sundays() -> None:
    def week(i: int, t: datetime) -> int:
        if t.date() == MAR8:
            return 2_000_000  # 192 kWh: ten Sundays
        return 200_000 if t.weekday() >= 5 else 1_000_000  # 19.2 kWh weekends, 96 weekdays

    s = build(Chan(date(2026, 2, 1), 36, week))
    assert len(run("HIGH_USAGE", s)) == 0  # 2.6 × the average day, but left to the multiplier
    assert found(run("MULTIPLIER_MISMATCH", s)) == [
        (
            0,
            at("2026-03-09T00:00"),
            "usage on Sun 2026-03-08: 192.000 kWh vs 19.200 kWh on the same weekday before:"
            " ratio 10, a power of ten (multiplier or unit mismatch)",
        )
    ]


def test_register_delta_off_by_a_power_of_ten_is_a_multiplier_mismatch() -> None:
    s = build(Chan(MAR2, 1, flat(250_000)))
    regs = Registers(
        offsets_of([2]),
        np.array([at("2026-03-02T00:00"), at("2026-03-03T00:00")], dtype=np.int64),
        np.array([0, 240 * KWH], dtype=np.int64),
    )
    ctx = context(s, regs)
    assert found(run("MULTIPLIER_MISMATCH", s, ctx)) == [
        (
            0,
            at("2026-03-03T00:00"),
            "intervals sum to 24.000 kWh between register reads at 2026-03-02 00:00 and"
            " 2026-03-03 00:00 local; the register advanced 240.000 kWh: ratio 0.1, a power"
            " of ten (multiplier or unit mismatch)",
        )
    ]
    assert len(run("SUM_CHECK", s, ctx)) == 0


def test_daily_usage_needs_enough_clean_history() -> None:
    short = build(Chan(date(2026, 3, 3), 6, on(MAR8, 800_000)))  # 5 days of history
    estimated = build(
        Chan(
            date(2026, 2, 1),
            36,
            on(MAR8, 800_000),
            quality=lambda i, t: 1 if t.date() < MAR8 else 0,
        )
    )
    for s in (short, estimated):
        assert len(run("HIGH_USAGE", s)) == 0
        assert len(run("MULTIPLIER_MISMATCH", s, tolerance=1.0)) == 0


def test_outage_day_and_half_day_are_not_low_usage_but_half_a_day_can_be_high() -> None:
    outage = build(
        Chan(
            date(2026, 2, 1),
            36,
            on(MAR8, 0),
            quality=lambda i, t: (
                int(Quality.POWER_OUTAGE) if t.date() == MAR8 and t.hour == 3 else 0
            ),
        )
    )
    assert len(run("LOW_USAGE", outage)) == 0

    def half(i: int, t: datetime) -> int:
        return 1_600_000 if t.date() == MAR8 else 250_000

    s = build(Chan(date(2026, 2, 1), 36, half))
    s = Series(  # drop the afternoon of the last day
        s.channels,
        offsets_of([len(s.value) - 48]),
        s.interval_end[:-48],
        s.interval_seconds[:-48],
        s.value[:-48],
        s.quality[:-48],
        s.check_from,
        s.interval_end[-49:-48],
    )
    assert len(run("LOW_USAGE", s, low_factor=0.9)) == 0
    assert found(run("HIGH_USAGE", s)) == [
        (
            0,
            at("2026-03-08T12:00"),
            "high usage on Sun 2026-03-08: 76.800 kWh vs average 24.000 kWh a day (ratio 3.20)",
        )
    ]


def _weeks(special: dict[tuple[datetime, int], int]) -> Callable[[int, datetime], int]:
    """240 and 260 Wh alternating, with ``special`` values at given (local start, fold)."""

    def value(i: int, t: datetime) -> int:
        alternate = 240_000 if i % 2 == 0 else 260_000
        return special.get((t.replace(tzinfo=None, fold=0), t.fold), alternate)

    return value


FIRST = date(2026, 2, 2)  # a Monday; 4 weeks of history, the 5th checked
CHECKED = date(2026, 3, 2)
NOON = (datetime(2026, 3, 4, 12, 0), 0)


def test_zscore_flags_an_interval_far_from_the_same_hour_of_past_weeks() -> None:
    s = build(Chan(FIRST, 35, _weeks({NOON: 1_000_000}), checked=CHECKED))
    assert found(run("OUTLIER_ZSCORE", s)) == [
        (
            0,
            at("2026-03-04T12:15"),
            "1.000 kWh at 2026-03-04 12:00 vs 0.250 kWh ± 0.010 kWh at this hour of the week in"
            " 4 weeks before (z +7.2, limit 5)",
        )
    ]
    quiet = build(Chan(FIRST, 35, _weeks({NOON: 700_000}), checked=CHECKED))
    assert len(run("OUTLIER_ZSCORE", quiet)) == 0


def test_iqr_flags_an_interval_outside_the_fences() -> None:
    s = build(Chan(FIRST, 35, _weeks({NOON: 1_000_000}), checked=CHECKED))
    assert found(run("OUTLIER_IQR", s)) == [
        (
            0,
            at("2026-03-04T12:15"),
            "1.000 kWh at 2026-03-04 12:00 outside -0.228 kWh .. 0.728 kWh (quartiles ± 3 IQR)"
            " of this hour of the week in 4 weeks before",
        )
    ]
    quiet = build(Chan(FIRST, 35, _weeks({NOON: 700_000}), checked=CHECKED))
    assert len(run("OUTLIER_IQR", quiet)) == 0


def test_low_outliers_with_a_small_floor_and_explained_rows_left_alone() -> None:
    s = build(
        Chan(
            FIRST, 35, _weeks({NOON: 0, (datetime(2026, 3, 5, 9, 0), 0): -300_000}), checked=CHECKED
        )
    )
    ctx = context(s)
    ctx.explained[np.flatnonzero(s.value < 0)] = True  # as a reset would
    hits = run("OUTLIER_ZSCORE", s, ctx, std_floor_fraction=0.01, z=4.0)
    assert hits.interval_end.tolist() == [at("2026-03-04T12:15")]
    assert "(z -5.0, limit 4)" in hits.detail[0]
    iqr = run("OUTLIER_IQR", s, ctx, iqr_floor_fraction=0.01, k=3.0)
    assert iqr.interval_end.tolist() == [at("2026-03-04T12:15")]


def test_outliers_need_usable_history_and_skip_export_unless_asked() -> None:
    estimated = build(
        Chan(
            FIRST,
            35,
            _weeks({NOON: 1_000_000}),
            checked=CHECKED,
            quality=lambda i, t: 1 if t.date() < CHECKED else 0,
        )
    )
    export = build(Chan(FIRST, 35, _weeks({NOON: 1_000_000}), checked=CHECKED, obis=EXPORT))
    for code in ("OUTLIER_ZSCORE", "OUTLIER_IQR"):
        assert len(run(code, estimated)) == 0
        assert len(run(code, export)) == 0
        assert run(code, export, export=True).interval_end.tolist() == [at("2026-03-04T12:15")]


def test_outlier_in_the_repeated_autumn_hour() -> None:
    # the second 01:30 of 2026-11-01 (EST); its history is 01:00-02:00 of the weeks before
    special = {(datetime(2026, 11, 1, 1, 30), 1): 1_000_000}  # fold 1: the repeated hour
    s = build(Chan(date(2026, 10, 4), 35, _weeks(special), tz=NY, checked=date(2026, 11, 1)))
    end = at("2026-11-01T01:45", NY) + 3600  # the EST 01:45
    for code in ("OUTLIER_ZSCORE", "OUTLIER_IQR"):
        hits = run(code, s)
        assert hits.interval_end.tolist() == [end]
        assert hits.detail[0].startswith("1.000 kWh at 2026-11-01 01:30 ")


def test_every_rule_copes_with_an_empty_series() -> None:
    s = build(Chan(MAR2, 0, flat(1)))
    for code in rules_stats.RULES:
        assert len(run(code, s)) == 0


def _random_channels() -> Series:
    rng = np.random.default_rng(7)
    noise = rng.gamma(2.0, 150_000.0, size=(3, 35 * 96)).astype(np.int64)
    noise[:, rng.integers(0, 35 * 96, 40)] *= 8  # bursts
    noise[1, 2000:2100] = 0

    def of(c: int) -> Callable[[int, datetime], int]:
        return lambda i, t: int(noise[c, i])

    zones = ("UTC", NY, "Europe/Berlin")
    return build(
        *(Chan(FIRST, 35, of(c), tz=tz, checked=date(2026, 2, 23)) for c, tz in enumerate(zones))
    )


def _brute_outliers(s: Series, ctx: Context, params: Mapping[str, Any], iqr: bool) -> set[int]:
    """The outlier rules' definition, row by row."""
    local = ctx.local_start
    hour, ok_sample = local // 3600, (s.quality == 0) & ~ctx.explained & (s.value >= 0)
    flagged: set[int] = set()
    for c in range(len(s.channels)):
        rows = np.arange(s.offsets[c], s.offsets[c + 1])
        days = local[rows] // 86_400
        peak = float(np.median([s.value[rows][days == d].max() for d in np.unique(days)]))
        for r in rows[s.checked()[rows]]:
            past = rows[np.isin(hour[rows], hour[r] - 168 * np.arange(1, 5)) & ok_sample[rows]]
            x = s.value[past].astype(float)
            if len(x) < int(params["min_samples"]):
                continue
            if iqr:
                q1, q3 = np.quantile(x, [0.25, 0.75])
                floor = max(
                    float(params["iqr_floor_mwh"]), float(params["iqr_floor_fraction"]) * peak
                )
                spread, k = max(q3 - q1, floor), float(params["k"])
                hit = s.value[r] < q1 - k * spread or s.value[r] > q3 + k * spread
            else:
                floor = max(
                    float(params["std_floor_mwh"]), float(params["std_floor_fraction"]) * peak
                )
                z = (s.value[r] - x.mean()) / max(x.std(ddof=1), floor)
                hit = abs(z) > float(params["z"])
            if hit:
                flagged.add(int(s.interval_end[r]) * 10 + c)
    return flagged


def test_outliers_match_their_definition_row_by_row() -> None:
    s = _random_channels()
    for code, iqr, tight in (
        ("OUTLIER_ZSCORE", False, {"z": 2.5, "std_floor_fraction": 0.01}),
        ("OUTLIER_IQR", True, {"k": 1.0, "iqr_floor_fraction": 0.01}),
        ("OUTLIER_ZSCORE", False, {}),
    ):
        params = {
            **{k: v for k, v in rules_stats.DEFAULTS[code].items() if k != "severity"},
            **tight,
        }
        hits = run(code, s, None, **tight)
        got = {
            int(e) * 10 + int(c) for c, e in zip(hits.row_channel, hits.interval_end, strict=True)
        }
        assert got == _brute_outliers(s, context(s), params, iqr)
        assert len(got) > (5 if tight else -1)


def test_spikes_match_their_definition_day_by_day() -> None:
    s = _random_channels()
    hits = run("SPIKE", s, ratio=2.0, floor_mwh=100_000)
    rc, day = s.row_channel(), context(s).local_start // 86_400
    want = set()
    for c in range(len(s.channels)):
        for d in np.unique(day[rc == c]):
            rows = np.flatnonzero((rc == c) & (day == d))
            top = rows[np.argsort(-s.value[rows], kind="stable")[:3]]
            third = s.value[top[2]]
            for row in top[:2]:  # the highest and the second-highest, each against the third
                high = s.value[row]
                if high > 2.0 * max(third, 0) and high - third > 100_000 and s.checked()[row]:
                    want.add((c, int(s.interval_end[row])))
    assert set(zip(hits.row_channel.tolist(), hits.interval_end.tolist(), strict=True)) == want
    assert len(want) > 3


def _overlapped(s: Series, rows: list[int]) -> Series:
    """``s`` with a 30-minute second row at the end of each of ``rows``: its start goes
    back into the quarter-hour before, across an hour or a local midnight when the row
    starts one."""
    at = np.asarray(rows, dtype=np.int64)
    pick = np.sort(np.concatenate([np.arange(s.rows), at]))
    secs = s.interval_seconds[pick].copy()
    secs[np.flatnonzero(np.diff(pick) == 0) + 1] = 2 * Q
    chan = np.searchsorted(s.offsets, pick, side="right") - 1
    return replace(
        s,
        offsets=offsets_of(np.bincount(chan, minlength=len(s.channels))),
        interval_end=s.interval_end[pick],
        interval_seconds=secs,
        value=s.value[pick],
        quality=s.quality[pick],
    )


@pytest.mark.parametrize("midnight", [False, True])
def test_outliers_are_the_same_without_the_shortcuts(
    monkeypatch: pytest.MonkeyPatch, midnight: bool
) -> None:
    """Ruling rows out by their history days' range and looking at the hours of some
    channels only change nothing, with overlapping rows (hours, and days when at
    midnight, that go back) in the history and the checked week."""
    base = _random_channels()
    hours = [int(base.offsets[c]) + k for c in range(3) for k in (400, 1204, 1212, 3000)]
    days = [int(base.offsets[1]) + 96 * 10, int(base.offsets[2]) + 96 * 31] if midnight else []
    s = _overlapped(base, hours + days)
    local, inner = context(s).local_start, np.ones(s.rows - 1, dtype=bool)
    inner[s.offsets[1:-1] - 1] = False  # not from one channel to the next
    assert ((np.diff(local // 3600) < 0) & inner).sum() == 12 + len(days)
    assert ((np.diff(local // 86_400) < 0) & inner).sum() == len(days)
    tight = {
        "OUTLIER_ZSCORE": {"z": 2.5, "std_floor_fraction": 0.01},
        "OUTLIER_IQR": {"k": 1.0, "iqr_floor_fraction": 0.01},
    }
    fast = {code: found(run(code, s, **p)) for code, p in tight.items()}
    every = rules_stats.hour_runs
    monkeypatch.setattr(rules_stats, "hour_runs", lambda s, c, chans: every(s, c, None))
    monkeypatch.setattr(
        rules_stats, "_past_reach", lambda s, c, rows, *_: np.ones(len(rows), dtype=bool)
    )
    slow = {code: found(run(code, s, **p)) for code, p in tight.items()}
    assert fast == slow
    assert min(len(v) for v in fast.values()) > 5


def test_a_row_is_ruled_out_only_within_reach_of_its_history_days() -> None:
    """_past_reach keeps exactly the rows more than ``reach`` above the lowest or below the
    highest value of the local days 1 .. 4 weeks before theirs (every row of those days)."""
    s = _overlapped(_random_channels(), [400, 4000, 8000])  # not at midnight
    ctx = context(s)
    rows = np.flatnonzero(s.checked())
    reach = np.full(len(rows), 2_000_000.0)
    got = rules_stats._past_reach(s, ctx, rows, reach, 4)
    day, rc = ctx.local_start // 86_400, s.row_channel()
    want = []
    for r in rows.tolist():
        past = (rc == rc[r]) & np.isin(day, day[r] - 7 * np.arange(1, 5))
        v = s.value[r]
        want.append(
            bool(past.any()) and (v > s.value[past].min() + 2e6 or v < s.value[past].max() - 2e6)
        )
    assert got.tolist() == want
    assert min(sum(want), len(want) - sum(want)) > 100  # both kinds, many of each
