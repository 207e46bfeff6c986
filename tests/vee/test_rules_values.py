"""The value rules (rollover, negative use, reverse flow, zero and flat runs, sum check) on
hand-made series with exact findings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from meterledger.core.reading import Quality
from meterledger.vee import facts, rules_values
from meterledger.vee.series import Registers, Series, offsets_of
from vee_support import EXPORT, IMPORT, KWH, NET, Q, at, context, found, run, series_of


@dataclass
class Chan:
    """One channel: ``values`` on quarter-hours whose first ends at ``first`` (UTC);
    the first ``history`` rows are history, the rest checked."""

    values: Sequence[int]
    first: int = at("2026-03-02T00:15")
    obis: str = IMPORT
    tz: str = "UTC"
    net: bool = False
    negative: bool = False
    quality: Sequence[int] | None = None
    history: int = 0
    skip: Sequence[int] = ()  # row indices left out (gaps)


def build(*chans: Chan) -> Series:
    ends: list[int] = []
    values: list[int] = []
    quality: list[int] = []
    counts: list[int] = []
    for c in chans:
        flags = list(c.quality) if c.quality is not None else [0] * len(c.values)
        keep = [i for i in range(len(c.values)) if i not in set(c.skip)]
        ends += [c.first + i * Q for i in keep]
        values += [c.values[i] for i in keep]
        quality += [flags[i] for i in keep]
        counts.append(len(keep))
    return series_of(
        [
            (ends[lo:hi], values[lo:hi], quality[lo:hi])
            for lo, hi in zip(offsets_of(counts)[:-1], offsets_of(counts)[1:], strict=True)
        ],
        obis=[c.obis for c in chans],
        tz=[c.tz for c in chans],
        net=[c.net for c in chans],
        negative=[c.negative for c in chans],
        check_from=[c.first + (c.history - 1) * Q for c in chans],
        check_to=[c.first + (len(c.values) - 1) * Q for c in chans],
    )


def reads(*per_channel: Sequence[tuple[int, int]]) -> Registers:
    """Register reads ``(read_at, value)`` per channel."""
    flat = [r for chan in per_channel for r in chan]
    return Registers(
        offsets_of([len(c) for c in per_channel]),
        np.array([r[0] for r in flat], dtype=np.int64),
        np.array([r[1] for r in flat], dtype=np.int64),
    )


def end(i: int, first: int = at("2026-03-02T00:15")) -> int:
    return first + i * Q


def test_defaults_name_every_rule_in_run_order_rollover_first() -> None:
    assert list(rules_values.RULES) == [
        "ROLLOVER",
        "NEGATIVE_USAGE",
        "REVERSE_FLOW",
        "ZERO_CONSUMPTION",
        "FLAT_LINE",
        "SUM_CHECK",
    ]
    assert set(rules_values.DEFAULTS) == set(rules_values.RULES)
    assert rules_values.DEFAULTS["ROLLOVER"]["severity"] == "fail"
    assert rules_values.DEFAULTS["NEGATIVE_USAGE"]["severity"] == "fail"


def test_quantities_show_kwh_with_three_decimals_rounded_half_away_from_zero() -> None:
    s = build(Chan([0]), Chan([0], obis="1.0.3.8.0.255"), Chan([0], obis="8.0.1.0.0.255"))
    values = np.array([12_400_000, -1_500, 1_499, -99_999_200_000])
    assert rules_values.quantities(s, np.array([0, 0, 1, 2]), values) == [
        "12.400 kWh",
        "-0.002 kWh",
        "0.001 kvarh",
        "-99999.200 m3",
    ]


def test_rollover_of_a_100000_kwh_register_is_corrected_and_not_negative_usage_or_spike() -> None:
    values = [250_000] * 96
    values[40] = 800_000 - 10**11  # 99999.500 -> 0.300 kWh: the delta wrapped
    s = build(Chan(values))
    ctx = context(s)
    assert found(run("ROLLOVER", s, ctx)) == [
        (0, end(40), "rollover at 100000.000 kWh: delta -99999.200 kWh, corrected delta 0.800 kWh")
    ]
    assert ctx.explained.tolist() == [i == 40 for i in range(96)]
    assert len(run("NEGATIVE_USAGE", s, ctx)) == 0
    assert len(run("SPIKE", s, ctx)) == 0
    assert len(run("LOW_USAGE", s, ctx)) == 0


def test_reset_to_zero_is_a_reset_with_no_corrected_value() -> None:
    values = [250_000] * 96
    values[10] = -12_345_678_000  # the register went from 12345.678 kWh back to 0
    s = build(Chan(values))
    ctx = context(s)
    assert found(run("ROLLOVER", s, ctx)) == [
        (
            0,
            end(10),
            "reset: delta -12345.678 kWh (the register went back; this interval's usage"
            " is unknown)",
        )
    ]
    assert len(run("NEGATIVE_USAGE", s, ctx)) == 0


def test_small_negative_is_negative_usage_not_a_rollover() -> None:
    values = [250_000] * 8
    values[3] = -500_000
    s = build(Chan(values))
    ctx = context(s)
    assert len(run("ROLLOVER", s, ctx)) == 0
    assert found(run("NEGATIVE_USAGE", s, ctx)) == [
        (0, end(3), "negative usage -0.500 kWh on a channel that cannot run backwards")
    ]


def test_negative_values_on_a_net_channel_are_nobodys_business() -> None:
    s = build(Chan([-5_000_000_000, -250_000, 300_000], obis=NET, net=True, negative=True))
    ctx = context(s)
    assert len(run("ROLLOVER", s, ctx)) == 0
    assert len(run("NEGATIVE_USAGE", s, ctx)) == 0
    assert not ctx.explained.any()


def test_rollover_in_history_is_explained_but_not_reported() -> None:
    values = [250_000] * 10
    values[2] = 800_000 - 10**11
    values[7] = -300_000
    s = build(Chan(values, history=5))
    ctx = context(s)
    assert len(run("ROLLOVER", s, ctx)) == 0
    assert ctx.explained[2]
    assert found(run("NEGATIVE_USAGE", s, ctx)) == [
        (0, end(7), "negative usage -0.300 kWh on a channel that cannot run backwards")
    ]


def test_register_rollover_from_reads_and_the_sum_check_uses_the_corrected_delta() -> None:
    s = build(Chan([250_000] * 96))  # 24 kWh over the day
    first, second = at("2026-03-02T00:00"), at("2026-03-03T00:00")
    regs = reads([(first, 99_990_000_000), (second, 14_000_000)])  # 99990 -> 14 kWh
    ctx = context(s, regs)
    assert found(run("ROLLOVER", s, ctx)) == [
        (
            0,
            second,
            "register read fell from 99990.000 kWh to 14.000 kWh at 2026-03-03 00:00 local:"
            " rollover at 100000.000 kWh, corrected delta 24.000 kWh",
        )
    ]
    assert len(run("SUM_CHECK", s, ctx)) == 0


def test_register_reset_from_reads_is_a_reset_and_skipped_by_the_sum_check() -> None:
    s = build(Chan([250_000] * 96))
    second = at("2026-03-03T00:00")
    regs = reads([(at("2026-03-02T00:00"), 15_000_000_000), (second, 100_000)])
    ctx = context(s, regs)
    assert found(run("ROLLOVER", s, ctx)) == [
        (
            0,
            second,
            "register read fell from 15000.000 kWh to 0.100 kWh at 2026-03-03 00:00 local: reset",
        )
    ]
    assert len(run("SUM_CHECK", s, ctx)) == 0


def test_register_drop_already_seen_in_the_intervals_is_reported_once() -> None:
    values = [250_000] * 96
    values[40] = 800_000 - 10**11
    s = build(Chan(values))
    regs = reads([(at("2026-03-02T00:00"), 99_990_000_000), (at("2026-03-03T00:00"), 1)])
    hits = run("ROLLOVER", s, context(s, regs))
    assert hits.interval_end.tolist() == [end(40)]


def test_reverse_flow_on_a_meter_that_is_not_net_but_not_on_a_net_meter() -> None:
    s = build(
        Chan([0, 1_234_000, 0], obis=EXPORT),
        Chan([0, 1_234_000, 0], obis=EXPORT, net=True),
        Chan([0, 1_234_000, 0], obis=IMPORT),
    )
    assert found(run("REVERSE_FLOW", s)) == [
        (0, end(1), "reverse flow: 1.234 kWh exported by a meter that is not a net meter")
    ]


def test_zero_run_of_a_day_fires_once_where_it_reaches_96() -> None:
    values = [250_000] * 4 + [0] * 100 + [250_000] * 4
    s = build(Chan(values))
    assert found(run("ZERO_CONSUMPTION", s)) == [
        (
            0,
            end(4 + 95),
            "zero usage for 100 intervals (25.0 h) from 2026-03-02 01:00 to 2026-03-03 02:00"
            " local, no power outage reported",
        )
    ]
    assert len(run("ZERO_CONSUMPTION", build(Chan([1] + [0] * 95 + [1])))) == 0


def test_zero_run_on_the_25_hour_dst_day_counts_its_100_quarter_hours() -> None:
    tz = "America/New_York"
    first = at("2026-11-01T00:15", tz)
    s = build(Chan([0] * 100 + [250_000], first=first, tz=tz))
    assert found(run("ZERO_CONSUMPTION", s)) == [
        (
            0,
            first + 95 * Q,
            "zero usage for 100 intervals (25.0 h) from 2026-11-01 00:00 to 2026-11-02 00:00"
            " local, no power outage reported",
        )
    ]


def test_zero_run_with_a_power_outage_reported_is_explained() -> None:
    quality = [0] * 120
    quality[50] = int(Quality.POWER_OUTAGE)
    s = build(Chan([0] * 120, quality=quality))
    assert len(run("ZERO_CONSUMPTION", s)) == 0


def test_zero_export_and_a_sunny_afternoon_of_zero_import_are_fine() -> None:
    sunny = [300_000] * 36 + [0] * 32 + [400_000] * 28  # 8 h of zero import at midday
    s = build(Chan([0] * 200, obis=EXPORT, net=True), Chan(sunny, net=True))
    assert len(run("ZERO_CONSUMPTION", s)) == 0


def test_flat_line_of_16_identical_values_fires_once_and_15_do_not() -> None:
    values = [100_000, 200_000] + [412_000] * 18 + [100_000]
    s = build(Chan(values), Chan([100_000] + [412_000] * 15 + [0]), Chan([0] * 40))
    assert found(run("FLAT_LINE", s)) == [
        (
            0,
            end(2 + 15),
            "flat line: 18 consecutive intervals of 0.412 kWh from 2026-03-02 00:30 to"
            " 2026-03-02 05:00 local",
        )
    ]


def test_flat_line_does_not_run_across_channels() -> None:
    s = build(Chan([1] * 5 + [7_000] * 10), Chan([7_000] * 10 + [1] * 5))
    assert len(run("FLAT_LINE", s)) == 0


def _day_of_reads(delta: int, offset: int = 0) -> tuple[Series, Registers]:
    s = build(Chan([250_000] * 97))  # a day and one interval: 24.250 kWh
    first, second = at("2026-03-02T00:00") + offset, at("2026-03-03T00:00") + offset
    return s, reads([(first, 5_000_000_000), (second, 5_000_000_000 + delta)])


def test_sum_check_flags_the_register_delta_off_by_more_than_the_tolerance() -> None:
    s, regs = _day_of_reads(25 * KWH)
    assert found(run("SUM_CHECK", s, context(s, regs))) == [
        (
            0,
            at("2026-03-03T00:00"),
            "intervals sum to 24.000 kWh between register reads at 2026-03-02 00:00 and"
            " 2026-03-03 00:00 local; the register advanced 25.000 kWh: off by -1.000 kWh"
            " (-4.0%, tolerance 2% or 0.500 kWh)",
        )
    ]
    s, regs = _day_of_reads(24_300_000)  # 1.2 % off: within
    assert len(run("SUM_CHECK", s, context(s, regs))) == 0


def test_sum_check_prorates_the_intervals_the_reads_fall_in() -> None:
    # reads at 00:07:30 and 00:07:30 the next day: half of the first and last intervals
    s, regs = _day_of_reads(24 * KWH, offset=450)
    assert len(run("SUM_CHECK", s, context(s, regs))) == 0
    s, regs = _day_of_reads(30 * KWH, offset=450)
    hits = run("SUM_CHECK", s, context(s, regs))
    assert hits.interval_end.tolist() == [at("2026-03-03T00:00")]
    assert "intervals sum to 24.000 kWh" in hits.detail[0]
    assert "off by -6.000 kWh (-20.0%" in hits.detail[0]


def test_sum_check_skips_pairs_with_missing_intervals_and_power_of_ten_pairs() -> None:
    s = build(Chan([250_000] * 96, skip=[30]))
    regs = reads([(at("2026-03-02T00:00"), 0), (at("2026-03-03T00:00"), 30 * KWH)])
    assert len(run("SUM_CHECK", s, context(s, regs))) == 0
    s, regs = _day_of_reads(240 * KWH)
    assert len(run("SUM_CHECK", s, context(s, regs))) == 0


def test_sum_check_reads_on_a_dst_day_in_local_time() -> None:
    tz = "America/New_York"
    first = at("2026-03-08T00:15", tz)
    s = build(Chan([250_000] * 92, first=first, tz=tz))  # the 23-hour day: 23 kWh
    regs = reads([(at("2026-03-08T00:00", tz), 0), (at("2026-03-09T00:00", tz), 24 * KWH)])
    hits = run("SUM_CHECK", s, context(s, regs))
    assert found(hits) == [
        (
            0,
            at("2026-03-09T00:00", tz),
            "intervals sum to 23.000 kWh between register reads at 2026-03-08 00:00 and"
            " 2026-03-09 00:00 local; the register advanced 24.000 kWh: off by -1.000 kWh"
            " (-4.2%, tolerance 2% or 0.500 kWh)",
        )
    ]


def test_every_rule_copes_with_an_empty_series() -> None:
    s = build(Chan([]))
    for code in rules_values.RULES:
        assert len(run(code, s)) == 0


def test_shared_row_facts_agree_with_the_series_on_irregular_rows() -> None:
    s = build(
        Chan([1] * 50, history=10, skip=[3, 4, 20]),
        Chan([2] * 30, history=0),
        Chan([], history=0),
        Chan([3] * 40, history=40),
    )
    ctx = context(s)
    assert facts.checked(s, ctx).tolist() == s.checked().tolist()
    chans = np.array([0, 0, 0, 1, 3, 3])
    t = np.array([end(2), end(3), end(21) + 1, end(0) - 1, end(39), end(100)])
    want = [
        int(np.searchsorted(s.interval_end[s.offsets[c] : s.offsets[c + 1]], x, "right"))
        for c, x in zip(chans, t, strict=True)
    ]
    assert (facts.upto(s, chans, t) - s.offsets[chans]).tolist() == want == [3, 3, 19, 0, 40, 40]
