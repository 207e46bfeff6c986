"""Invoices rendered from a bill document: HTML (with an inline SVG chart) and PDF."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from meterledger.billing.bill import Bill, DailyUsage, Determinants, Line, PeriodUsage, Segment
from meterledger.billing.invoice import (
    PALETTE,
    _pdf_text,
    render_html,
    render_pdf,
    write_invoices,
)
from meterledger.core.errors import InputError

SVG = "{http://www.w3.org/2000/svg}"
DAILY = {
    "2024-01-01": {"peak": Decimal("4.5"), "offpeak": Decimal("9")},
    "2024-01-02": {"peak": Decimal("3"), "offpeak": Decimal("12.25")},
    "2024-01-03": {"peak": Decimal("6.125"), "offpeak": Decimal("0")},
}


def make_bill(
    *,
    account: str = "ACC-0042",
    estimated: Decimal = Decimal("0"),
    energy_rate: Decimal = Decimal("0.3125"),
    carry_out: Decimal = Decimal("0"),
) -> Bill:
    peak = sum((d["peak"] for d in DAILY.values()), Decimal(0))
    off = sum((d["offpeak"] for d in DAILY.values()), Decimal(0))
    det = Determinants(
        start=date(2024, 1, 1),
        end=date(2024, 1, 4),
        days=3,
        service_days=3,
        periods=(
            PeriodUsage("peak", peak, Decimal("1.5")),
            PeriodUsage("offpeak", off, Decimal("0")),
        ),
        demand_kw=(("all", Decimal("3.2")), ("on_peak", Decimal("2.75"))),
        peak_kw=Decimal("3.2"),
        intervals=288,
        estimated_kwh=estimated,
        daily=tuple(
            DailyUsage(date.fromisoformat(day), tuple(v.items())) for day, v in DAILY.items()
        ),
    )
    charges = (
        Line.of("fixed", "Customer charge", Decimal("3"), "day", Decimal("0.33")),
        Line.of("energy", "Energy peak", peak - Decimal("1.5"), "kWh", energy_rate, period="peak"),
        Line.of("energy", "Energy off-peak", off, "kWh", Decimal("0.1175"), period="offpeak"),
        Line.of("demand", "Demand charge", Decimal("3.2"), "kW", Decimal("12.5")),
    )
    subtotal = sum((c.amount for c in charges), Decimal(0))
    tax = Line.of("tax", "State tax 6.25 %", subtotal, "$", Decimal("0.0625"))
    return Bill(
        account=account,
        period="2024-01",
        tariff_id="tou-res-1",
        tariff_name="Residential TOU",
        tariff_hash="ab" * 32,
        metering="nem",
        currency="USD",
        timezone="America/New_York",
        determinants=det,
        segments=(Segment(date(2024, 1, 1), date(2024, 1, 4), date(2023, 6, 1)),),
        lines=(*charges, tax),
        meters=("MTR-1",),
        carry_in=Decimal("0"),
        carry_out=carry_out,
        notes=("Thank you – pay by 2024-02-15…",),
    )


@pytest.fixture
def doc() -> dict[str, Any]:
    return make_bill().document()


def svg_of(html: str) -> ET.Element:
    match = re.search(r"<svg\b.*?</svg>", html, re.S)
    assert match is not None
    return ET.fromstring(match.group(0))


def test_html_shows_account_lines_and_total(doc: dict[str, Any]) -> None:
    html = render_html(doc)
    assert "ACC-0042" in html and "MTR-1" in html
    assert "Residential TOU" in html and "tou-res-1" in html and "nem" in html
    assert "2024-01-01 – 2024-01-03" in html  # end exclusive shown as the last day
    for line in doc["lines"]:
        assert line["description"] in html
        assert line["explanation"] in html
        assert f"${line['amount']}" in html
    assert f"${doc['total']}" in html and f"${doc['subtotal']}" in html
    assert "Thank you – pay by 2024-02-15…" in html
    assert "<script" not in html
    assert "CANCELLATION" not in html and "REBILL" not in html
    assert "carried out" not in html


def test_html_determinants(doc: dict[str, Any]) -> None:
    html = render_html(doc)
    for p in doc["determinants"]["periods"]:
        assert p["kwh_delivered"] in html and p["kwh_net"] in html
    assert "3.2" in html and "2.75" in html and "on_peak" in html


def test_svg_has_one_bar_per_day_stacked_proportionally(doc: dict[str, Any]) -> None:
    svg = svg_of(render_html(doc))
    groups = svg.findall(f"{SVG}g[@class='day']")
    assert [g.get("data-day") for g in groups] == list(DAILY)
    ratios = []
    for g in groups:
        rects = g.findall(f"{SVG}rect")
        assert [r.get("data-period") for r in rects] == ["peak", "offpeak"]
        assert [r.get("fill") for r in rects] == [PALETTE[0], PALETTE[1]]
        day = DAILY[str(g.get("data-day"))]
        bottom = None
        for r in rects:
            kwh = day[str(r.get("data-period"))]
            assert Decimal(str(r.get("data-kwh"))) == kwh
            height, y = float(str(r.get("height"))), float(str(r.get("y")))
            if kwh:
                ratios.append(height / float(kwh))
            else:
                assert height == 0
            if bottom is not None:  # stacked: each segment sits on the one below
                assert y + height == pytest.approx(bottom, abs=1e-3)
            bottom = y
    assert max(ratios) == pytest.approx(min(ratios), rel=1e-3)
    legend = [t.text for t in svg.iter(f"{SVG}text") if t.text in ("peak", "offpeak")]
    assert legend == ["peak", "offpeak"]
    ticks = svg.findall(f"{SVG}line[@class='tick']")
    assert len(ticks) >= 3


def test_estimated_notice_only_when_share_positive(doc: dict[str, Any]) -> None:
    assert "includes estimated energy" not in render_html(doc)
    est = make_bill(estimated=Decimal("7.1")).document()
    assert Decimal(est["determinants"]["estimated_share"]) > 0
    html = render_html(est)
    share = Decimal(est["determinants"]["estimated_share"]) * 100
    assert f"includes estimated energy: {share.normalize():f} %" in html
    assert b"includes estimated energy" in render_pdf(est, compress=False)
    assert b"includes estimated energy" not in render_pdf(doc, compress=False)


def test_html_escapes_the_account() -> None:
    evil = make_bill(account='<script>alert("x")</script>').document()
    html = render_html(evil)
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    svg_of(html)  # still well-formed


def test_banners(doc: dict[str, Any]) -> None:
    cancel = render_html(doc, kind="cancel", bill_id=8, replaces=7)
    assert "CANCELLATION of bill #7" in cancel and "#8" in cancel
    assert "REBILL replacing bill #7" in render_html(doc, kind="rebill", bill_id=9, replaces=7)
    assert b"CANCELLATION of bill #7" in render_pdf(doc, kind="cancel", replaces=7, compress=False)
    with pytest.raises(InputError):
        render_html(doc, kind="cancel")
    with pytest.raises(InputError):
        render_html(doc, kind="refund", replaces=1)


def test_credits_shown_when_nonzero() -> None:
    html = render_html(make_bill(carry_out=Decimal("12.5")).document())
    assert "NEM credit carried out" in html and "$12.50" in html


def test_pdf_is_deterministic_and_tracks_content(doc: dict[str, Any]) -> None:
    first = render_pdf(doc, bill_id=1)
    assert first.startswith(b"%PDF-")
    assert render_pdf(doc, bill_id=1) == first
    changed = make_bill(energy_rate=Decimal("0.35")).document()
    assert changed["total"] != doc["total"]
    assert render_pdf(changed, bill_id=1) != first


def test_pdf_contains_the_text(doc: dict[str, Any]) -> None:
    raw = render_pdf(doc, compress=False)
    assert raw.startswith(b"%PDF-")
    assert f"${doc['total']}".encode() in raw
    assert b"ACC-0042" in raw
    for line in doc["lines"]:
        assert f"${line['amount']}".encode() in raw
        assert line["explanation"].encode("cp1252") in raw  # × is in cp1252
    assert "Thank you – pay by 2024-02-15…".encode("cp1252") in raw
    assert b"/CreationDate (D:20240104000000Z" in raw
    assert b" re f" in raw  # chart bars are filled rectangles


def test_pdf_text_fallbacks() -> None:
    assert _pdf_text("2 × 3 – 4 € …") == "2 × 3 – 4 € …"
    assert _pdf_text("a ≤ b → c − d ✓ 電") == "a <= b -> c - d v ?"


def test_pdf_survives_unsupported_characters() -> None:
    doc = make_bill(account="Zoë ≤ 電力").document()
    assert render_pdf(doc).startswith(b"%PDF-")


def test_no_daily_usage_means_no_chart(doc: dict[str, Any]) -> None:
    doc["determinants"]["daily"] = []
    assert "<svg" not in render_html(doc)
    assert render_pdf(doc).startswith(b"%PDF-")


def test_write_invoices(tmp_path: Path, doc: dict[str, Any]) -> None:
    out = tmp_path / "inv"
    html_path, pdf_path = write_invoices(
        doc, out, "2024-01-ACC", kind="rebill", bill_id=3, replaces=2
    )
    assert (html_path, pdf_path) == (out / "2024-01-ACC.html", out / "2024-01-ACC.pdf")
    assert "REBILL replacing bill #2" in html_path.read_text(encoding="utf-8")
    assert pdf_path.read_bytes() == render_pdf(doc, kind="rebill", bill_id=3, replaces=2)
    assert sorted(p.name for p in out.iterdir()) == ["2024-01-ACC.html", "2024-01-ACC.pdf"]
    write_invoices(doc, out, "2024-01-ACC", kind="bill", bill_id=3, replaces=None)  # overwrite
    assert sorted(p.name for p in out.iterdir()) == ["2024-01-ACC.html", "2024-01-ACC.pdf"]


def test_a_long_legend_wraps_and_empty_periods_are_left_out(doc: dict[str, Any]) -> None:
    """Six periods with long names: the legend takes rows of three inside the SVG, and a
    period with no energy on any day is neither charted nor listed."""
    names = [f"winter_period_with_a_long_name_{i}" for i in range(6)]
    doc["determinants"]["daily"] = [
        {"day": "2024-01-01", **{n: "1.5" for n in names}, "summer_on_peak": "0"},
        {"day": "2024-01-02", **{n: "2" for n in names}, "summer_on_peak": "0"},
    ]
    doc["determinants"]["periods"] = [
        {"period": n, "kwh_delivered": "3.5", "kwh_received": "0", "kwh_net": "3.5"}
        for n in names
    ] + [{"period": "summer_on_peak", "kwh_delivered": "0", "kwh_received": "0",
          "kwh_net": "0"}]  # fmt: skip
    html = render_html(doc)
    svg = svg_of(html)
    width, height = float(svg.get("width", "0")), float(svg.get("height", "0"))
    legend = [g for g in svg.iter("{http://www.w3.org/2000/svg}g") if g.get("class") == "legend"]
    texts = list(legend[0].iter("{http://www.w3.org/2000/svg}text"))
    assert [t.text for t in texts] == names
    # 33 characters at font size 10 need about 180 px: each column is (632 - 48) / 3 wide
    assert all(float(t.get("x", "0")) + 180 <= width for t in texts)
    assert max(float(t.get("y", "0")) for t in texts) < height
    assert len({t.get("y") for t in texts}) == 2  # two rows
    assert "summer_on_peak" not in html


def test_a_tax_line_shows_its_base_and_percentage(doc: dict[str, Any]) -> None:
    html = render_html(doc)
    tax = next(line for line in doc["lines"] if line["code"] == "tax")
    assert f'<td class="num">${tax["quantity"]}</td><td class="num">6.25 %</td>' in html
