"""Rule configuration: defaults from the rule modules, class and source overrides, and
errors that name their path in the file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from meterledger.core.errors import InputError
from meterledger.vee import rules_time
from meterledger.vee.config import (
    BUNDLED_RULES_PATH,
    Estimation,
    RuleModule,
    RuleSet,
    rule_modules,
)
from meterledger.vee.findings import Context, Hits, Severity
from meterledger.vee.series import Series


def spike(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Test rule: flags nothing.

    Second paragraph, not in the summary."""
    return Hits.empty()


def rollover(series: Series, context: Context, params: Mapping[str, Any]) -> Hits:
    """Test rollover."""
    return Hits.empty()


VALUES: Any = SimpleNamespace(
    __name__="test_values",
    RULES={"SPIKE": spike, "ROLLOVER": rollover},
    DEFAULTS={
        "SPIKE": {"severity": "warn", "ratio": 3.0, "days": 7, "on_net": True, "unit": "kWh"},
        "ROLLOVER": {"severity": "pass"},
    },
)
MODULES: tuple[RuleModule, ...] = (rules_time, VALUES)


def rules(data: object) -> RuleSet:
    return RuleSet.from_mapping(data, origin="test.yaml", modules=MODULES)


def test_defaults_come_from_the_modules_with_rollover_first() -> None:
    ruleset = rules({})
    assert [i.code for i in ruleset.catalogue] == [
        "ROLLOVER",
        *rules_time.RULES,
        "SPIKE",
    ]
    listing = ruleset.codes()
    assert listing[0] == {"code": "ROLLOVER", "severity": "pass"}
    assert listing[5] == {"code": "CLOCK_DRIFT", "severity": "warn", "tolerance_s": 60}
    assert listing[-1] == {
        "code": "SPIKE",
        "severity": "warn",
        "ratio": 3.0,
        "days": 7,
        "on_net": True,
        "unit": "kWh",
    }
    spike_info = ruleset.catalogue[-1]
    assert (spike_info.module, spike_info.summary) == ("test_values", "Test rule: flags nothing.")
    assert ruleset.rule("SPIKE") is spike
    profile = ruleset.profile("anything", "csv")
    assert profile.severity("DUPLICATE") is Severity.FAIL
    assert dict(profile.params("SPIKE")) == {"ratio": 3.0, "days": 7, "on_net": True, "unit": "kWh"}
    assert "ROLLOVER" not in profile.enabled()
    assert profile.net_meter is False
    assert ruleset.estimation == Estimation(4, 3)


def test_class_then_source_key_by_key() -> None:
    ruleset = rules(
        {
            "classes": {
                "default": {"rules": {"SPIKE": {"days": 14}}},
                "residential": {"rules": {"SPIKE": {"ratio": 5, "severity": "fail"}}},
                "net": {"net_meter": True, "rules": {"SPIKE": "pass"}},
            },
            "sources": {"dlms": {"rules": {"SPIKE": {"severity": "warn", "days": 3}}}},
        }
    )
    home = ruleset.profile("residential", "csv")
    assert home.severity("SPIKE") is Severity.FAIL
    assert dict(home.params("SPIKE")) == {"ratio": 5.0, "days": 7, "on_net": True, "unit": "kWh"}
    assert isinstance(home.params("SPIKE")["ratio"], float)
    home_dlms = ruleset.profile("residential", "dlms")
    assert home_dlms.severity("SPIKE") is Severity.WARN
    assert dict(home_dlms.params("SPIKE"))["ratio"] == 5.0
    assert dict(home_dlms.params("SPIKE"))["days"] == 3
    # an unknown class is the default class
    other = ruleset.profile("street-lighting", "greenbutton")
    assert dict(other.params("SPIKE"))["days"] == 14
    net = ruleset.profile("net", "csv")
    assert net.net_meter is True and "SPIKE" not in net.enabled()
    assert ruleset.profile("net", "dlms").severity("SPIKE") is Severity.WARN  # source wins


def test_enabled_codes_are_those_on_in_some_profile() -> None:
    everywhere_off = {c: "pass" for c in rules_time.RULES}
    ruleset = rules(
        {
            "classes": {"default": {"rules": {**everywhere_off, "SPIKE": "pass"}}},
            "sources": {"dlms": {"rules": {"GAP": "warn"}}},
        }
    )
    assert ruleset.enabled_codes() == ("GAP",)
    assert rules({}).enabled_codes() == (*rules_time.RULES, "SPIKE")
    assert rules({"classes": {"x": {"rules": {"ROLLOVER": "warn"}}}}).enabled_codes()[0] == (
        "ROLLOVER"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"classes": {"net": {"rules": {"NOPE": {}}}}}, "classes.net.rules.NOPE: unknown rule"),
        (
            {"classes": {"net": {"rules": {"SPIKE": {"ratio": "five"}}}}},
            "classes.net.rules.SPIKE.ratio: expected a number, got 'five'",
        ),
        (
            {"classes": {"net": {"rules": {"SPIKE": {"days": 2.5}}}}},
            "classes.net.rules.SPIKE.days: expected an integer, got 2.5",
        ),
        (
            {"classes": {"net": {"rules": {"SPIKE": {"days": True}}}}},
            "classes.net.rules.SPIKE.days: expected an integer, got True",
        ),
        (
            {"classes": {"net": {"rules": {"SPIKE": {"on_net": 1}}}}},
            "classes.net.rules.SPIKE.on_net: expected true or false, got 1",
        ),
        (
            {"classes": {"net": {"rules": {"SPIKE": {"unit": 3}}}}},
            "classes.net.rules.SPIKE.unit: expected a string, got 3",
        ),
        (
            {"sources": {"dlms": {"rules": {"SPIKE": {"window": 3}}}}},
            "sources.dlms.rules.SPIKE.window: unknown parameter (expected one of severity, days,",
        ),
        (
            {"sources": {"dlms": {"rules": {"GAP": {"severity": "loud"}}}}},
            "sources.dlms.rules.GAP.severity: severity is pass, warn or fail, got 'loud'",
        ),
        (
            {"sources": {"dlms": {"rules": {"GAP": "maybe"}}}},
            "sources.dlms.rules.GAP: severity is pass, warn or fail, got 'maybe'",
        ),
        (
            {"sources": {"dlms": {"rules": {"GAP": False}}}},
            "sources.dlms.rules.GAP: expected a mapping, got bool",
        ),
        ({"classes": {"net": {"netmeter": True}}}, "classes.net.netmeter: unknown key"),
        (
            {"classes": {"net": {"net_meter": "yes"}}},
            "classes.net.net_meter: expected true or false",
        ),
        ({"sources": {"dlms": {"net_meter": True}}}, "sources.dlms.net_meter: unknown key"),
        ({"classes": ["net"]}, "classes: expected a mapping, got list"),
        ({"rule": {}}, "top level.rule: unknown key"),
        ({"version": 2}, "version: expected 1, got 2"),
        ({"estimation": {"max_linear": 0}}, "estimation.max_linear: expected a positive integer"),
        ({"estimation": {"like_days": "3"}}, "estimation.like_days: expected an integer"),
        ({"estimation": {"likedays": 3}}, "estimation.likedays: unknown key"),
        ("rules", "top level: expected a mapping, got str"),
    ],
)
def test_errors_name_their_path(data: object, message: str) -> None:
    with pytest.raises(InputError) as caught:
        rules(data)
    assert str(caught.value).startswith(f"test.yaml: {message}")


def test_an_empty_file_is_all_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("# nothing\n", encoding="utf-8")
    ruleset = RuleSet.load(path, modules=MODULES)
    assert ruleset.origin == str(path)
    assert ruleset.profile("x", "y").severities == rules({}).profile("x", "y").severities


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read rules file"):
        RuleSet.load(tmp_path / "missing.yaml", modules=MODULES)
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes: [\n", encoding="utf-8")
    with pytest.raises(InputError, match="is not valid YAML"):
        RuleSet.load(bad, modules=MODULES)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("classes:\n  net:\n    rules:\n      SPIKE: {ratio: x}\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"wrong.yaml: classes.net.rules.SPIKE.ratio: expected"):
        RuleSet.load(wrong, modules=MODULES)


def test_bundled_file_loads_over_the_installed_modules() -> None:
    ruleset = RuleSet.load()
    assert ruleset.origin == str(BUNDLED_RULES_PATH)
    assert {"COMPLETENESS", "GAP", "FUTURE_TIMESTAMP"} <= {i.code for i in ruleset.catalogue}
    assert ruleset.profile("net", "csv").net_meter is True
    assert ruleset.profile("residential", "csv").net_meter is False
    assert dict(ruleset.profile("residential", "dlms").params("CLOCK_DRIFT")) == {"tolerance_s": 30}
    assert dict(ruleset.profile("residential", "csv").params("CLOCK_DRIFT")) == {"tolerance_s": 60}
    assert ruleset.estimation == Estimation(max_linear=4, like_days=3)


def test_installed_modules_export_rules_with_valid_defaults() -> None:
    modules = rule_modules()
    assert modules[0] is rules_time
    for module in modules:
        assert list(module.RULES) == list(module.DEFAULTS), module
        for code, defaults in module.DEFAULTS.items():
            Severity.parse(str(defaults["severity"]))
            assert module.RULES[code].__doc__, code


def test_a_code_defined_twice_is_a_bug() -> None:
    again: Any = SimpleNamespace(
        __name__="again", RULES={"GAP": spike}, DEFAULTS={"GAP": {"severity": "warn"}}
    )
    with pytest.raises(ValueError, match="GAP is defined twice"):
        RuleSet.from_mapping({}, modules=(rules_time, again))
