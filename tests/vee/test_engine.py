"""The engine: channels partitioned by (class, source) profile, rollover first, findings
tagged, sorted and summarised."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from meterledger.vee import rules_time
from meterledger.vee.config import RuleModule, RuleSet
from meterledger.vee.engine import Findings, run_rules
from meterledger.vee.findings import Context, Hits, Severity, is_per_channel, per_channel
from meterledger.vee.series import Channels, ClockReads, Registers, Series, offsets_of

Q = 900
T0 = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp())
NOW = T0 + 86_400


def series(
    rows: list[list[int]],
    classes: list[str],
    sources: list[str],
    *,
    meters: list[str] | None = None,
    net: list[bool] | None = None,
) -> Series:
    """Channel c has values ``rows[c]`` at ends T0 + Q, T0 + 2Q, ... (all checked)."""
    n = len(rows)
    return Series(
        Channels(
            channel_id=np.array([10 * (c + 1) for c in range(n)], dtype=np.int64),
            meter_id=tuple(meters or [f"M{c}" for c in range(n)]),
            obis=tuple("1.8.0" for _ in rows),
            timezone=tuple("UTC" for _ in rows),
            meter_class=tuple(classes),
            source=tuple(sources),
            step=np.full(n, Q, dtype=np.int64),
            net=np.array(net or [False] * n, dtype=bool),
            allows_negative=np.zeros(n, dtype=bool),
        ),
        offsets_of([len(r) for r in rows]),
        np.array([T0 + Q * (i + 1) for r in rows for i in range(len(r))], dtype=np.int64),
        np.full(sum(map(len, rows)), Q, dtype=np.int64),
        np.array([v for r in rows for v in r], dtype=np.int64),
        np.zeros(sum(map(len, rows)), dtype=np.int64),
        np.full(n, T0, dtype=np.int64),
        np.array([T0 + Q * len(r) for r in rows], dtype=np.int64),
    )


def high(s: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Test rule: values above ``limit``, unless a rollover explained them."""
    rc = s.row_channel()
    at = np.flatnonzero((s.value > int(params["limit"])) & s.checked() & ~context.explained)
    return Hits.of(rc[at], s.interval_end[at], [f"{v} > {params['limit']}" for v in s.value[at]])


def netted(s: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Test rule: the first row of every net channel, with its register and clock counts."""
    chans = np.flatnonzero(s.channels.net & (np.diff(s.offsets) > 0))
    detail = [
        f"net, {np.diff(context.registers.offsets)[c]} reads, "
        f"{np.diff(context.clocks.offsets)[c]} clock reads, "
        f"first register {context.registers.value[context.registers.offsets[c]]}"
        for c in chans.tolist()
    ]
    return Hits.of(chans, s.interval_end[s.offsets[chans]], detail)


def rollover(s: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Test rollover: explains values of exactly ``value`` (999) and flags them."""
    context.explained |= s.value == int(params["value"])
    rc = s.row_channel()
    at = np.flatnonzero(s.value == int(params["value"]))
    return Hits.of(rc[at], s.interval_end[at], ["rollover"] * len(at))


TEST: Any = SimpleNamespace(
    __name__="test_rules",
    RULES={"HIGH": high, "NETTED": netted, "ROLLOVER": rollover},  # rollover listed last
    DEFAULTS={
        "HIGH": {"severity": "warn", "limit": 100},
        "NETTED": {"severity": "warn"},
        "ROLLOVER": {"severity": "warn", "value": 999},
    },
)
ONLY_TEST: tuple[RuleModule, ...] = (TEST,)
CONFIG = {
    "classes": {
        "default": {},
        "commercial": {"rules": {"HIGH": {"limit": 500}}},
        "net": {"net_meter": True},
    },
    "sources": {"dlms": {"rules": {"HIGH": {"severity": "fail"}}}},
}


def test_profiles_partition_channels_and_overrides_apply() -> None:
    ruleset = RuleSet.from_mapping(CONFIG, modules=ONLY_TEST)
    s = series(
        [[50, 200, 600], [50, 200, 600], [600, 50], [200]],
        ["residential", "commercial", "commercial", "unknown"],
        ["csv", "csv", "dlms", "csv"],
    )
    found = run_rules(s, ruleset, now=NOW)
    assert found.channel_id.tolist() == [10, 10, 20, 30, 40]
    assert found.meter_id == ("M0", "M0", "M1", "M2", "M3")
    assert found.obis == ("1.8.0",) * 5
    assert found.interval_end.tolist() == [T0 + 2 * Q, T0 + 3 * Q, T0 + 3 * Q, T0 + Q, T0 + Q]
    assert found.rule == ("HIGH",) * 5
    assert found.detail == ("200 > 100", "600 > 100", "600 > 500", "600 > 500", "200 > 100")
    assert [Severity(int(v)) for v in found.severity] == [
        Severity.WARN,
        Severity.WARN,
        Severity.WARN,
        Severity.FAIL,  # commercial's limit, dlms's severity
        Severity.WARN,
    ]
    assert found.held().tolist() == [False, False, False, True, False]
    assert found.count_by_rule() == {"HIGH": 5}
    assert found.severity_text(3) == "fail"
    assert found.records()[3] == {
        "channel_id": 30,
        "meter_id": "M2",
        "channel": "1.8.0",
        "interval_end": T0 + Q,
        "rule": "HIGH",
        "severity": "fail",
        "detail": "600 > 500",
    }


def test_rollover_runs_first_and_explains_what_later_rules_see() -> None:
    ruleset = RuleSet.from_mapping({}, modules=ONLY_TEST)
    assert [i.code for i in ruleset.catalogue] == ["ROLLOVER", "HIGH", "NETTED"]
    found = run_rules(series([[999, 150]], ["default"], ["csv"]), ruleset, now=NOW)
    assert list(zip(found.rule, found.interval_end.tolist(), strict=True)) == [
        ("ROLLOVER", T0 + Q),
        ("HIGH", T0 + 2 * Q),  # 999 is explained, not high
    ]


def test_what_a_rollover_explains_in_one_setting_every_later_rule_sees() -> None:
    """ROLLOVER runs per setting (commercial has its own), HIGH over everything at once
    (and then per setting, when its limit differs): each sees every explained row."""
    config = {"classes": {"commercial": {"rules": {"ROLLOVER": {"value": 555}}}}}
    ruleset = RuleSet.from_mapping(config, modules=ONLY_TEST)
    s = series([[999, 555, 200], [999, 555, 200]], ["residential", "commercial"], ["csv"] * 2)
    found = run_rules(s, ruleset, now=NOW)
    got = list(zip(found.channel_id.tolist(), found.rule, found.detail, strict=True))
    assert got == [
        (10, "ROLLOVER", "rollover"),
        (10, "HIGH", "555 > 100"),
        (10, "HIGH", "200 > 100"),
        (20, "HIGH", "999 > 100"),
        (20, "ROLLOVER", "rollover"),
        (20, "HIGH", "200 > 100"),
    ]
    config["sources"] = {"dlms": {"rules": {"HIGH": {"limit": 150}}}}
    split = RuleSet.from_mapping(config, modules=ONLY_TEST)
    s2 = replace(s, channels=replace(s.channels, source=("csv", "dlms")))
    found = run_rules(s2, split, now=NOW)
    assert [d for r, d in zip(found.rule, found.detail, strict=True) if r == "HIGH"] == [
        "555 > 100",
        "200 > 100",
        "999 > 150",
        "200 > 150",
    ]


def test_severity_pass_turns_a_rule_off_per_profile() -> None:
    config = {"classes": {"quiet": {"rules": {"HIGH": "pass"}}}, "sources": {}}
    ruleset = RuleSet.from_mapping(config, modules=ONLY_TEST)
    s = series([[500], [500]], ["quiet", "default"], ["csv", "csv"])
    found = run_rules(s, ruleset, now=NOW)
    assert found.channel_id.tolist() == [20]
    everything_off = RuleSet.from_mapping(
        {"classes": {"default": {"rules": {"HIGH": "pass", "NETTED": "pass", "ROLLOVER": "pass"}}}},
        modules=ONLY_TEST,
    )
    assert len(run_rules(s, everything_off, now=NOW)) == 0


def test_a_net_class_marks_its_channels_net_and_registers_and_clocks_follow() -> None:
    ruleset = RuleSet.from_mapping(CONFIG, modules=ONLY_TEST)
    s = series(
        [[1], [1], [1]],
        ["default", "net", "default"],
        ["csv", "csv", "csv"],
        net=[False, False, True],
    )
    registers = Registers(
        offsets_of([1, 2, 1]),
        np.array([T0, T0, T0 + Q, T0], dtype=np.int64),
        np.array([7, 8, 9, 6], dtype=np.int64),
    )
    clocks = ClockReads(
        offsets_of([0, 1, 2]),
        np.array([T0, T0, T0 + 1], dtype=np.int64),
        np.array([1, 2, 3], dtype=np.int64),
    )
    found = run_rules(s, ruleset, registers=registers, clocks=clocks, now=NOW)
    assert list(zip(found.channel_id.tolist(), found.detail, strict=True)) == [
        (20, "net, 2 reads, 1 clock reads, first register 8"),
        (30, "net, 1 reads, 2 clock reads, first register 6"),
    ]


def test_time_rules_through_the_engine_with_class_and_source_overrides() -> None:
    ruleset = RuleSet.from_mapping(
        {
            "classes": {"commercial": {"rules": {"CLOCK_DRIFT": {"tolerance_s": 10}}}},
            "sources": {"dlms": {"rules": {"GAP": "fail", "CLOCK_DRIFT": {"severity": "fail"}}}},
        },
        modules=(rules_time,),
    )
    full = [1] * 8
    s = series([full, full, full], ["residential", "commercial", "commercial"], ["csv"] * 3)
    s = replace(
        s,
        channels=replace(s.channels, source=("csv", "csv", "dlms")),
        check_to=s.check_to + 2 * Q,  # two missing intervals at the end of every channel
    )
    clocks = ClockReads(
        offsets_of([1, 1, 1]),
        np.array([T0 + 4 * Q, T0 + 4 * Q, T0 + 4 * Q], dtype=np.int64),
        np.array([30_000, 30_000, -30_000], dtype=np.int64),
    )
    found = run_rules(s, ruleset, clocks=clocks, now=NOW)
    got = [
        (int(c), int(e), r, found.severity_text(i))
        for i, (c, e, r) in enumerate(
            zip(found.channel_id, found.interval_end, found.rule, strict=True)
        )
    ]
    assert got == [
        (10, T0 + 9 * Q, "GAP", "warn"),
        (20, T0 + 4 * Q, "CLOCK_DRIFT", "warn"),
        (20, T0 + 9 * Q, "GAP", "warn"),
        (30, T0 + 4 * Q, "CLOCK_DRIFT", "fail"),
        (30, T0 + 9 * Q, "GAP", "fail"),
    ]
    assert found.held().tolist() == [False, False, False, True, True]


def test_findings_are_sorted_deduplicated_and_the_worst_wins() -> None:
    def noisy(s: Series, context: Context, params: Mapping[str, Any]) -> Hits:
        """Test: two hits on one interval, out of order."""
        return Hits.of(np.array([1, 0, 0]), np.array([T0 + Q, T0 + 2 * Q, T0 + 2 * Q]), "xyz")

    def strict(s: Series, context: Context, params: Mapping[str, Any]) -> Hits:
        """Test: one failing hit."""
        return Hits.of(np.array([0]), np.array([T0 + 2 * Q]), ["bad"])

    module: Any = SimpleNamespace(
        __name__="t",
        RULES={"Z_NOISY": noisy, "A_STRICT": strict},
        DEFAULTS={"Z_NOISY": {"severity": "warn"}, "A_STRICT": {"severity": "fail"}},
    )
    s = series([[1, 1], [1]], ["default", "default"], ["csv", "csv"])
    found = run_rules(s, RuleSet.from_mapping({}, modules=(module,)), now=NOW)
    assert list(zip(found.channel_id.tolist(), found.rule, found.detail, strict=True)) == [
        (10, "A_STRICT", "bad"),
        (10, "Z_NOISY", "y"),  # the rule's first hit on an interval is kept
        (20, "Z_NOISY", "x"),
    ]
    assert found.held().tolist() == [True, True, False]
    worst = found.worst()
    assert worst.channel_id.tolist() == [10, 20]
    assert worst.interval_end.tolist() == [T0 + 2 * Q, T0 + Q]
    assert worst.severity.tolist() == [2, 1]
    assert found.count_by_rule() == {"A_STRICT": 1, "Z_NOISY": 2}
    picked = found.select(found.held())
    assert picked.rule == ("A_STRICT", "Z_NOISY") and picked.meter_id == ("M0", "M0")


def test_a_rule_naming_a_channel_outside_its_group_is_a_bug() -> None:
    def wrong(s: Series, context: Context, params: Mapping[str, Any]) -> Hits:
        """Test: a channel index past the group."""
        return Hits.of(np.array([len(s.channels)]), np.array([T0]), ["?"])

    module: Any = SimpleNamespace(
        __name__="t", RULES={"WRONG": wrong}, DEFAULTS={"WRONG": {"severity": "warn"}}
    )
    s = series([[1], [1]], ["a", "b"], ["csv", "csv"])
    with pytest.raises(ValueError, match="WRONG named a channel outside its series"):
        run_rules(s, RuleSet.from_mapping({}, modules=(module,)), now=NOW)


def test_empty_findings_work() -> None:
    ruleset = RuleSet.from_mapping({}, modules=ONLY_TEST)
    found = run_rules(series([[1, 2]], ["default"], ["csv"]), ruleset, now=NOW)
    assert len(found) == 0
    assert found.held().tolist() == [] and len(found.worst()) == 0
    assert found.count_by_rule() == {} and found.records() == []
    assert len(Findings.empty().select(np.zeros(0, dtype=bool))) == 0


def test_timings_name_every_rule_and_phase() -> None:
    timings: dict[str, float] = {}
    ruleset = RuleSet.from_mapping({}, modules=ONLY_TEST)
    s = series([[1], [1]], ["a", "b"], ["csv", "csv"])
    run_rules(s, ruleset, now=NOW, timings=timings)
    assert set(timings) == {"partition", "local_time", "findings", "ROLLOVER", "HIGH", "NETTED"}
    assert all(v >= 0 for v in timings.values())


def test_the_full_installed_rule_set_runs_on_a_clean_day() -> None:
    """Every installed rule (time, values, stats) on clean flat data: no failure held."""
    day = [250_000 + 1000 * (i % 7) for i in range(96)]
    s = series([day], ["residential"], ["csv"])
    found = run_rules(s, RuleSet.load(), now=NOW)
    assert not found.held().any()
    assert "DUPLICATE" not in found.count_by_rule()


def wide_high(s: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """HIGH marked per channel: run over the whole series for each setting."""
    seen.append(len(s.channels))
    return high(s, context, params)


seen: list[int] = []
per_channel(wide_high)


def test_a_per_channel_rule_runs_over_every_channel_and_keeps_its_settings_own() -> None:
    marked: Any = SimpleNamespace(
        __name__="marked_rules",
        RULES={"HIGH": wide_high, "NETTED": netted, "ROLLOVER": rollover},
        DEFAULTS=TEST.DEFAULTS,
    )
    s = series(
        [[50, 200, 600], [50, 200, 600], [600, 50], [200]],
        ["residential", "commercial", "commercial", "unknown"],
        ["csv", "csv", "dlms", "csv"],
    )
    want = run_rules(s, RuleSet.from_mapping(CONFIG, modules=ONLY_TEST), now=NOW)
    seen.clear()
    got = run_rules(s, RuleSet.from_mapping(CONFIG, modules=(marked,)), now=NOW)
    assert seen == [4, 4, 4]  # three settings, each over all four channels
    assert got.records() == want.records()
    assert got.detail == ("200 > 100", "600 > 100", "600 > 500", "600 > 500", "200 > 100")


def test_the_installed_rules_marked_per_channel() -> None:
    """Not ROLLOVER (it writes what it explains), SIBLING_COMPLETENESS (it compares a
    meter's channels), GAP (estimates on other channels change its detail) or the rules
    that search day and hour keys across channels."""
    marked = {i.code for i in RuleSet.load().catalogue if is_per_channel(i.rule)}
    assert marked == {
        "COMPLETENESS", "DUPLICATE", "CLOCK_DRIFT", "CLOCK_SET", "FUTURE_TIMESTAMP",
        "ESTIMATION_TOO_LONG", "NEGATIVE_USAGE", "REVERSE_FLOW", "ZERO_CONSUMPTION",
        "FLAT_LINE", "SUM_CHECK", "SPIKE",
    }  # fmt: skip
