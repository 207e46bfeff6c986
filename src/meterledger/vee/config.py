"""Rules as data: which rules run, how severe their findings are, and with what parameters.

Every rule module (:data:`RULE_MODULES`) exports ``RULES`` (code → function, in run order)
and ``DEFAULTS`` (code → ``{"severity": "warn"|"fail"|"pass", <param>: <value>, ...}``).
A rules file holds overrides of those defaults::

    version: 1
    classes:                      # meter classes; an unknown class uses ``default``
      default: {}
      residential: {rules: {GAP: {severity: fail}}}
      net: {net_meter: true, rules: {...}}
    sources:                      # the feed the data came by: csv, jsonl, greenbutton, dlms ...
      dlms: {rules: {CLOCK_DRIFT: {tolerance_s: 30}}}
    estimation: {max_linear: 4, like_days: 3}

For a channel of class K that came from source S, each rule's settings are its module
defaults, then ``classes.K.rules``, then ``sources.S.rules``, key by key. A rule given as a
bare word (``GAP: fail``) sets its severity only; severity ``pass`` turns it off. Every
mistake (unknown rule or parameter, wrong type, bad severity) is an
:class:`~meterledger.core.errors.InputError` that names its path in the file.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import yaml

from meterledger.core.errors import InputError
from meterledger.vee.findings import Rule, Severity

__all__ = [
    "BUNDLED_RULES_PATH",
    "DEFAULT_CLASS",
    "RULE_MODULES",
    "Estimation",
    "Profile",
    "RuleInfo",
    "RuleModule",
    "RuleSet",
    "rule_modules",
]

BUNDLED_RULES_PATH = Path(__file__).with_name("rules.yaml")
DEFAULT_CLASS = "default"
FIRST = "ROLLOVER"  # sets Context.explained, which later rules read: it always runs first
RULE_MODULES = (
    "meterledger.vee.rules_time",
    "meterledger.vee.rules_values",
    "meterledger.vee.rules_stats",
)
_TOP_KEYS = frozenset({"version", "classes", "sources", "estimation"})
_CLASS_KEYS = frozenset({"rules", "net_meter"})
_SOURCE_KEYS = frozenset({"rules"})

Params = Mapping[str, Any]


class RuleModule(Protocol):
    """What a rule module exports."""

    RULES: Mapping[str, Rule]
    DEFAULTS: Mapping[str, Mapping[str, object]]


def rule_modules() -> tuple[RuleModule, ...]:
    """The rule modules of :data:`RULE_MODULES` that are installed, in that order."""
    found: list[RuleModule] = []
    for name in RULE_MODULES:
        try:
            module: Any = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but something it imports does not
                raise
            continue
        if not hasattr(module, "RULES") or not hasattr(module, "DEFAULTS"):
            raise ValueError(f"rule module {name} exports no RULES and DEFAULTS")
        found.append(module)
    return tuple(found)


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """One rule with its defaults: what ``meterledger vee rules`` lists."""

    code: str
    rule: Rule
    severity: Severity
    params: Params
    module: str
    summary: str


@dataclass(frozen=True, slots=True)
class Estimation:
    """Estimation settings: linear interpolation fills gaps of up to ``max_linear``
    intervals; longer ones take the average of the ``like_days`` nearest like days."""

    max_linear: int = 4
    like_days: int = 3


@dataclass(frozen=True, slots=True)
class Profile:
    """The resolved settings of one (meter class, source): severity and parameters per rule."""

    meter_class: str
    source: str
    net_meter: bool
    order: tuple[str, ...]
    severities: Mapping[str, Severity]
    parameters: Mapping[str, Params]

    def severity(self, code: str) -> Severity:
        return self.severities[code]

    def params(self, code: str) -> Params:
        return self.parameters[code]

    def enabled(self) -> tuple[str, ...]:
        """The codes whose severity is not ``pass``, in run order."""
        return tuple(c for c in self.order if self.severities[c] is not Severity.PASS)


@dataclass(frozen=True, slots=True)
class _Override:
    severity: Severity | None
    params: Params


@dataclass(frozen=True, slots=True)
class _Class:
    net_meter: bool
    rules: Mapping[str, _Override]


def _catalogue(modules: Sequence[RuleModule]) -> tuple[RuleInfo, ...]:
    entries: list[RuleInfo] = []
    seen: set[str] = set()
    for module in modules:
        name = str(getattr(module, "__name__", type(module).__name__))
        for code, rule in module.RULES.items():
            if code in seen:
                raise ValueError(f"rule {code} is defined twice ({name})")
            seen.add(code)
            defaults = dict(module.DEFAULTS.get(code, {}))
            severity = Severity.parse(str(defaults.pop("severity", "")))
            summary = " ".join((rule.__doc__ or "").strip().split("\n\n")[0].split())
            entries.append(
                RuleInfo(code, rule, severity, MappingProxyType(defaults), name, summary)
            )
    entries.sort(key=lambda e: e.code != FIRST)  # stable: module order otherwise
    return tuple(entries)


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InputError(f"{where}: expected a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise InputError(f"{where}: keys are names, got {key!r}")
    return value


def _unknown(data: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    extra = sorted(set(data) - allowed)
    if extra:
        names = ", ".join(sorted(allowed))
        raise InputError(f"{where}.{extra[0]}: unknown key (expected one of {names})")


def _typed(value: object, default: object, where: str) -> object:
    """``value`` checked against the type of the parameter's default."""
    if isinstance(default, bool):
        ok, kind = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, kind = isinstance(value, int) and not isinstance(value, bool), "an integer"
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        kind = "a number"
        value = float(value) if ok else value  # type: ignore[arg-type]
    elif isinstance(default, str):
        ok, kind = isinstance(value, str), "a string"
    elif isinstance(default, tuple | list):
        ok, kind = isinstance(value, list | tuple), "a list"
        value = tuple(value) if ok else value  # type: ignore[arg-type]
    else:
        ok, kind = type(value) is type(default), type(default).__name__
    if not ok:
        raise InputError(f"{where}: expected {kind}, got {value!r}")
    return value


def _severity(value: object, where: str) -> Severity:
    if isinstance(value, str) and value.strip().upper() in Severity.__members__:
        return Severity[value.strip().upper()]
    raise InputError(f"{where}: severity is pass, warn or fail, got {value!r}")


def _rules(value: object, where: str, catalogue: Mapping[str, RuleInfo]) -> Mapping[str, _Override]:
    out: dict[str, _Override] = {}
    for code, body in _mapping(value, where).items():
        at = f"{where}.{code}"
        info = catalogue.get(code)
        if info is None:
            raise InputError(f"{at}: unknown rule (known: {', '.join(sorted(catalogue))})")
        if isinstance(body, str):  # GAP: fail
            out[code] = _Override(_severity(body, at), {})
            continue
        items = dict(_mapping(body, at))
        severity = (
            _severity(items.pop("severity"), f"{at}.severity") if "severity" in items else None
        )
        params: dict[str, object] = {}
        for name, raw in items.items():
            if name not in info.params:
                known = ", ".join(["severity", *sorted(info.params)])
                raise InputError(f"{at}.{name}: unknown parameter (expected one of {known})")
            params[name] = _typed(raw, info.params[name], f"{at}.{name}")
        out[code] = _Override(severity, params)
    return out


def _estimation(value: object, where: str) -> Estimation:
    items = _mapping(value, where)
    base = Estimation()
    _unknown(items, frozenset(base.__dataclass_fields__), where)
    got = {k: _typed(v, getattr(base, k), f"{where}.{k}") for k, v in items.items()}
    for k, v in got.items():
        if not isinstance(v, int) or v < 1:
            raise InputError(f"{where}.{k}: expected a positive integer, got {v!r}")
    return Estimation(**got)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class RuleSet:
    """Every known rule with its defaults, and the overrides of one rules file."""

    catalogue: tuple[RuleInfo, ...]
    classes: Mapping[str, _Class]
    sources: Mapping[str, Mapping[str, _Override]]
    estimation: Estimation
    origin: str

    @classmethod
    def load(
        cls, path: Path | None = None, *, modules: Sequence[RuleModule] | None = None
    ) -> RuleSet:
        """The rules file at ``path`` (None: the bundled ``rules.yaml``) over the defaults
        of ``modules`` (None: :func:`rule_modules`). A file given replaces the bundled one."""
        path = path or BUNDLED_RULES_PATH
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read rules file {path}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise InputError(f"rules file {path} is not UTF-8 text") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InputError(f"rules file {path} is not valid YAML: {exc}") from None
        return cls.from_mapping(data, origin=str(path), modules=modules)

    @classmethod
    def from_mapping(
        cls,
        data: object,
        *,
        origin: str = "<rules>",
        modules: Sequence[RuleModule] | None = None,
    ) -> RuleSet:
        """A rule set from the parsed contents of a rules file (errors name ``origin``)."""
        catalogue = _catalogue(rule_modules() if modules is None else modules)
        known = {info.code: info for info in catalogue}
        try:
            top = _mapping(data, "top level")
            _unknown(top, _TOP_KEYS, "top level")
            if top.get("version", 1) != 1:
                raise InputError(f"version: expected 1, got {top['version']!r}")
            classes: dict[str, _Class] = {}
            for name, body in _mapping(top.get("classes"), "classes").items():
                at = f"classes.{name}"
                items = _mapping(body, at)
                _unknown(items, _CLASS_KEYS, at)
                net = _typed(items.get("net_meter", False), False, f"{at}.net_meter")
                classes[name] = _Class(bool(net), _rules(items.get("rules"), f"{at}.rules", known))
            sources: dict[str, Mapping[str, _Override]] = {}
            for name, body in _mapping(top.get("sources"), "sources").items():
                at = f"sources.{name}"
                items = _mapping(body, at)
                _unknown(items, _SOURCE_KEYS, at)
                sources[name] = _rules(items.get("rules"), f"{at}.rules", known)
            estimation = _estimation(top.get("estimation"), "estimation")
        except InputError as exc:
            raise InputError(f"{origin}: {exc}") from None
        return cls(catalogue, classes, sources, estimation, origin)

    def codes(self) -> list[dict[str, object]]:
        """Every rule in run order as ``{"code", "severity", <param>: <default>, ...}`` (the
        defaults, before any override; plain values, ready for JSON)."""
        return [
            {"code": info.code, "severity": info.severity.text, **info.params}
            for info in self.catalogue
        ]

    def rule(self, code: str) -> Rule:
        for info in self.catalogue:
            if info.code == code:
                return info.rule
        raise KeyError(code)

    def profile(self, meter_class: str, source: str) -> Profile:
        """The settings for channels of ``meter_class`` whose data came from ``source``."""
        klass = self.classes.get(meter_class) or self.classes.get(DEFAULT_CLASS)
        layers = [klass.rules if klass else {}, self.sources.get(source, {})]
        severities: dict[str, Severity] = {}
        parameters: dict[str, Params] = {}
        for info in self.catalogue:
            severity, params = info.severity, dict(info.params)
            for layer in layers:
                override = layer.get(info.code)
                if override is None:
                    continue
                if override.severity is not None:  # PASS is falsy: compare with None
                    severity = override.severity
                params.update(override.params)
            severities[info.code] = severity
            parameters[info.code] = MappingProxyType(params)
        return Profile(
            meter_class,
            source,
            bool(klass and klass.net_meter),
            tuple(info.code for info in self.catalogue),
            MappingProxyType(severities),
            MappingProxyType(parameters),
        )

    def enabled_codes(self) -> tuple[str, ...]:
        """The codes that run in at least one profile (any class, any source), in run order."""
        classes = [*self.classes, "\0unknown"]
        sources = [*self.sources, "\0unknown"]
        on: set[str] = set()
        for k in classes:
            for s in sources:
                on.update(self.profile(k, s).enabled())
        return tuple(info.code for info in self.catalogue if info.code in on)
