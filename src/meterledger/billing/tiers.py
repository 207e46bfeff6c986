"""Tier blocks and demand figures, in Decimal: the arithmetic the rater applies to each
period's energy and each window's demand (rounding rules in docs/tariffs.md)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

from meterledger.billing.money import ZERO, kwh_of_milli
from meterledger.billing.tariff import Tier

__all__ = ["Block", "kw_of_window", "share_of_total", "split_tiers"]

_KW_PLACES = Decimal("0.000001")
_MWH_PLACES = Decimal("0.000001")  # kWh to the mWh
_LIMIT_PLACES = Decimal("0.001")

Block = tuple[int, Decimal, Decimal, Decimal, Decimal | None]


def split_tiers(
    quantity: Decimal, tiers: Sequence[Tier], scale: Decimal | None = None
) -> list[Block]:
    """``quantity`` cut into blocks: ``(tier number, block quantity, rate, from, upto)``;
    limits are multiplied by ``scale`` (rounded to 0.001) when given. Zero blocks are left
    out; a zero or negative quantity gives no block."""
    blocks: list[Block] = []
    below = ZERO
    for number, tier in enumerate(tiers, start=1):
        upto = None
        if tier.upto is not None:
            upto = tier.upto
            if scale is not None:
                upto = (tier.upto * scale).quantize(_LIMIT_PLACES, rounding=ROUND_HALF_UP)
        top = quantity if upto is None else min(quantity, upto)
        block = top - below
        if block > 0:
            blocks.append((number, block, tier.rate, below, upto))
        if upto is None or quantity <= upto:
            break
        below = upto
    return blocks


def share_of_total(
    charged: Decimal, total: Decimal, tiers: Sequence[Tier], scale: Decimal | None
) -> list[Block]:
    """Tiers on the cycle's total energy (``tier_basis: total``): the total is cut by this
    period's limits and the period takes its share of each block, ``charged / total``, to the
    mWh (half-up); the last block takes the remainder, so the blocks add up to ``charged``."""
    if charged <= 0 or total <= 0:
        return []
    blocks: list[Block] = []
    left = charged
    whole = split_tiers(total, tiers, scale)
    for index, (tier, block, rate, lo, hi) in enumerate(whole):
        if index == len(whole) - 1:
            qty = left
        else:
            qty = (block * charged / total).quantize(_MWH_PLACES, rounding=ROUND_HALF_UP)
        left -= qty
        if qty > 0:
            blocks.append((tier, qty, rate, lo, hi))
    return blocks


def kw_of_window(milli_window: int, window_seconds: int) -> Decimal:
    if milli_window <= 0:
        return ZERO
    kw = kwh_of_milli(milli_window) * 3600 / window_seconds
    return kw.quantize(_KW_PLACES, rounding=ROUND_HALF_UP)
