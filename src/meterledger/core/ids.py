"""Identifiers: meters, services and the channels a meter records."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from meterledger.core.errors import InputError
from meterledger.core.obis import ObisCode
from meterledger.core.units import BaseUnit, Unit

__all__ = [
    "CHANNEL_CATALOG",
    "METER_ID_PATTERN",
    "ChannelSpec",
    "MeterId",
    "MeterStatus",
    "Service",
    "channels_for_service",
    "is_valid_meter_id",
]

#: A meter id is the utility's identifier: 1-64 characters, letters, digits and ``._:/-``,
#: starting with a letter or digit. Anything else (spaces, commas, control characters) is
#: malformed: such ids break exports and are almost always a parsing accident upstream.
METER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/\-]{0,63}$"
_METER_ID = re.compile(METER_ID_PATTERN)


def is_valid_meter_id(text: str) -> bool:
    # fullmatch: with match, "$" would also accept a trailing newline
    return isinstance(text, str) and bool(_METER_ID.fullmatch(text))


@dataclass(frozen=True, slots=True, order=True)
class MeterId:
    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not is_valid_meter_id(self.value):
            raise InputError(f"malformed meter id: {self.value!r}")

    def __str__(self) -> str:
        return self.value


class Service(enum.StrEnum):
    ELECTRIC = "electric"
    WATER = "water"
    GAS = "gas"

    @property
    def default_unit(self) -> Unit:
        return {
            Service.ELECTRIC: Unit.KWH,
            Service.WATER: Unit.LITRE,
            Service.GAS: Unit.CUBIC_METRE,
        }[self]

    @property
    def default_capacity_milli_per_hour(self) -> int:
        """Physical ceiling of one meter, in base milli-units per hour.

        Electric 1 MW (a large CT-rated service), water 100 m3/h (a 4-inch meter's maximum
        flow), gas 1,000 m3/h (a large commercial rotary meter). Set a tighter ``capacity``
        per meter (``meters add --capacity``) to catch more: a 200 A residential service is
        about 48 kW.
        """
        return {
            Service.ELECTRIC: 1_000_000 * 1_000,
            Service.WATER: 100_000 * 1_000,
            Service.GAS: 1_000_000 * 1_000,
        }[self]


class MeterStatus(enum.StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class ChannelSpec:
    """What a channel is: its OBIS code, what it measures and whether it may go negative."""

    obis: ObisCode
    name: str
    base: BaseUnit
    service: Service
    allows_negative: bool = False


CHANNEL_CATALOG: dict[str, ChannelSpec] = {
    str(spec.obis): spec
    for spec in (
        ChannelSpec(
            ObisCode(1, 0, 1, 8, 0), "active energy import (+A)", BaseUnit.WH, Service.ELECTRIC
        ),
        ChannelSpec(
            ObisCode(1, 0, 2, 8, 0), "active energy export (-A)", BaseUnit.WH, Service.ELECTRIC
        ),
        ChannelSpec(
            ObisCode(1, 0, 16, 8, 0),
            "active energy net (+A - -A)",
            BaseUnit.WH,
            Service.ELECTRIC,
            True,
        ),
        ChannelSpec(
            ObisCode(1, 0, 3, 8, 0), "reactive energy import (+R)", BaseUnit.VARH, Service.ELECTRIC
        ),
        ChannelSpec(
            ObisCode(1, 0, 4, 8, 0), "reactive energy export (-R)", BaseUnit.VARH, Service.ELECTRIC
        ),
        ChannelSpec(ObisCode(8, 0, 1, 0, 0), "water volume", BaseUnit.LITRE, Service.WATER),
        ChannelSpec(ObisCode(7, 0, 3, 0, 0), "gas volume", BaseUnit.LITRE, Service.GAS),
    )
}


def channels_for_service(service: Service) -> list[ChannelSpec]:
    return [spec for spec in CHANNEL_CATALOG.values() if spec.service is service]
