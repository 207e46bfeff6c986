"""Invoices: a stored bill document (``Bill.document()``) rendered as HTML and as PDF.

Both renderings work from the JSON-able document alone, so any stored bill can be rendered
again without the dataclasses. They share one view (``_view``): the HTML goes through a Jinja2
template (autoescaped, ``StrictUndefined``) with an inline SVG chart of daily usage stacked by
TOU period; the PDF is drawn with fpdf2 and is byte-identical for the same input (fixed creation
date and producer, content-derived file ID).
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from fpdf import FPDF, FontFace
from jinja2 import Environment, PackageLoader, StrictUndefined

from meterledger.billing.money import plain
from meterledger.core.errors import InputError

__all__ = ["KINDS", "PALETTE", "Doc", "render_html", "render_pdf", "write_invoices"]

Doc = dict[str, Any]  # a bill document, as ``Bill.document()`` returns it

KINDS = ("bill", "cancel", "rebill")
# Okabe-Ito: colour-blind safe; period i (in the document's period order) gets PALETTE[i % 8].
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
_SYMBOLS = {"USD": "$", "CAD": "$", "AUD": "$", "NZD": "$", "EUR": "€", "GBP": "£"}
# Characters outside cp1252 (what the PDF core fonts can show) and their ASCII stand-ins.
_PDF_FALLBACK = str.maketrans(
    {"≤": "<=", "≥": ">=", "→": "->", "←": "<-", "\u200b": ""}
    | dict(zip("−‐‑≈✓✔·\u2009\u202f\u00a0", "---~vv.   ", strict=True))
)
# SVG chart geometry (px): plot area from left to right and from top down to base.
_SVG = {"w": 640, "h": 270, "left": 48, "right": 632, "top": 24, "base": 220}


def _pdf_text(text: object) -> str:
    """Text the PDF core fonts (cp1252) can show: known symbols get ASCII fallbacks, anything
    else outside cp1252 becomes ``?``. The one place PDF text is made safe."""
    mapped = str(text).translate(_PDF_FALLBACK)
    return mapped.encode("cp1252", errors="replace").decode("cp1252")


def _money(amount: str, currency: str) -> str:
    value = Decimal(amount)
    sign = "-" if value < 0 else ""
    symbol = _SYMBOLS.get(currency)
    body = f"{abs(value):.2f}"
    return f"{sign}{symbol}{body}" if symbol else f"{sign}{body} {currency}"


def _num(text: str) -> str:
    return plain(Decimal(text))


@dataclass(frozen=True, slots=True)
class _Seg:
    period: str
    kwh: float
    text: str


@dataclass(frozen=True, slots=True)
class _Chart:
    """Daily usage stacked by period; ``top`` is the axis maximum, ``ticks`` its kWh marks."""

    periods: tuple[tuple[str, str], ...]  # (name, colour)
    days: tuple[tuple[str, tuple[_Seg, ...]], ...]  # (ISO day, segments bottom-up)
    top: float
    ticks: tuple[float, ...]

    @property
    def label_every(self) -> int:
        return max(1, math.ceil(len(self.days) / 12))


def _tick(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _chart(det: dict[str, Any]) -> _Chart | None:
    daily: list[dict[str, str]] = det.get("daily", [])
    if not daily:
        return None
    names = [p["period"] for p in det.get("periods", [])]
    for day in daily:
        names += [k for k in day if k != "day" and k not in names]
    # A period with no energy on any day (a summer period on a winter bill) is left out.
    names = [n for n in names if any(Decimal(d.get(n, "0")) for d in daily)] or names[:1]
    periods = tuple((n, PALETTE[i % len(PALETTE)]) for i, n in enumerate(names))
    days = tuple(
        (d["day"], tuple(_Seg(n, float(d.get(n, "0")), _num(d.get(n, "0"))) for n in names))
        for d in daily
    )
    most = max((sum(max(s.kwh, 0.0) for s in segs) for _, segs in days), default=0.0)
    if most <= 0:
        return _Chart(periods, days, 1.0, (0.0, 1.0))
    raw = most / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    count = math.ceil(most / step - 1e-9)
    return _Chart(periods, days, count * step, tuple(i * step for i in range(count + 1)))


@dataclass(frozen=True, slots=True)
class _Bar:
    day: str
    label: str  # the day's axis label, or "" to leave it out
    x: float
    w: float
    rects: tuple[tuple[_Seg, str, float, float], ...]  # (segment, colour, y, height)


def _layout(
    chart: _Chart, left: float, width: float, base: float, height: float
) -> tuple[list[_Bar], list[tuple[float, str]]]:
    """Bars and ticks ``(y, label)`` of the chart in a y-down frame (SVG and PDF alike)."""
    slot, bars = width / len(chart.days), []
    for i, (day, segs) in enumerate(chart.days):
        y, rects = base, []
        for seg, (_, colour) in zip(segs, chart.periods, strict=True):
            h = max(seg.kwh, 0.0) / chart.top * height
            y -= h
            rects.append((seg, colour, y, h))
        label = day[5:] if i % chart.label_every == 0 else ""
        bars.append(_Bar(day, label, left + (i + 0.15) * slot, slot * 0.7, tuple(rects)))
    return bars, [(base - t / chart.top * height, _tick(t)) for t in chart.ticks]


def _banner(kind: str, replaces: int | None) -> str | None:
    if kind not in KINDS:
        raise InputError(f"invoice kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "bill":
        return None
    if replaces is None:
        raise InputError(f"a {kind} invoice needs the number of the bill it replaces")
    return (
        f"CANCELLATION of bill #{replaces}"
        if kind == "cancel"
        else (f"REBILL replacing bill #{replaces}")
    )


def _span(start: str, end: str) -> str:
    """``start – last day`` of a date range whose ``end`` is exclusive."""
    return f"{start} – {date.fromisoformat(end) - timedelta(days=1)}"


def _used(periods: list[dict[str, str]]) -> list[dict[str, str]]:
    """The TOU periods with energy delivered or received in the cycle."""
    return [p for p in periods if Decimal(p["kwh_delivered"]) or Decimal(p["kwh_received"])]


LEGEND_PER_ROW = 3


def _legend(chart: _Chart) -> list[tuple[str, str, int, int]]:
    """``(name, colour, column, row)``: three entries a row, so long names stay inside the chart."""
    return [
        (name, colour, i % LEGEND_PER_ROW, i // LEGEND_PER_ROW)
        for i, (name, colour) in enumerate(chart.periods)
    ]


def _delta(doc: Doc, cur: str) -> dict[str, Any] | None:
    """What a rebill changed against the bill it replaces (``doc["rebill"]``)."""
    rebill = doc.get("rebill")
    if not rebill:
        return None
    delta = rebill["delta"]
    return {
        "replaces": rebill["replaces"],
        "cancel": rebill["cancel"],
        "total": _money(delta["total"], cur),
        "by_code": [
            (code, _money(amount, cur))
            for code, amount in delta["by_code"].items()
            if Decimal(amount)
        ],
        "kwh_delivered": _num(delta["kwh_delivered"]),
        "kwh_received": _num(delta["kwh_received"]),
        "peak_kw": _num(delta["peak_kw"]),
    }


def _view(doc: Doc, kind: str, bill_id: int | None, replaces: int | None) -> dict[str, Any]:
    """Everything both renderings show, as display strings."""
    cur, det = doc["currency"], doc["determinants"]
    share, sym, segs = Decimal(det["estimated_share"]), _SYMBOLS.get(cur), doc["segments"]
    estimated = f"{plain(share * 100)} % ({_num(det['estimated_kwh'])} kWh)"

    def item(line: dict[str, Any]) -> dict[str, str]:
        per = f"/{line['unit']}" if line["unit"] not in ("", "$") else ""
        rate = f"{sym}{_num(line['rate'])}" if sym else f"{_num(line['rate'])} {cur}"
        quantity = f"{_num(line['quantity'])} {per[1:]}".strip()
        if line["unit"] == "$":  # a tax: a percentage of an amount
            rate = f"{plain(Decimal(line['rate']) * 100)} %"
            quantity = _money(line["quantity"], cur)
        return {
            "description": line["description"],
            "quantity": quantity,
            "rate": rate + per,
            "amount": _money(line["amount"], cur),
            "explanation": line["explanation"],
        }

    return {
        "kind": kind,
        "banner": _banner(kind, replaces),
        "bill_id": bill_id,
        "account": doc["account"],
        "meters": ", ".join(doc["meters"]) or "-",
        "cycle": doc["period"],
        "period": _span(det["start"], det["end"]),
        "days": f"{det['days']} (in service: {det['service_days']})",
        "tariff": f"{doc['tariff']['name']} ({doc['tariff']['id']})",
        "metering": doc["metering"] or "standard",
        "timezone": doc["timezone"],
        "usage": [  # one row per TOU period, then the total
            [p["period"], *(_num(p[k]) for k in ("kwh_delivered", "kwh_received", "kwh_net"))]
            for p in [*_used(det["periods"]), det | {"period": "Total"}]
        ],
        "demand": [(name, _num(kw)) for name, kw in det["demand_kw"].items()],
        "peak_kw": _num(det["peak_kw"]),
        "intervals": det["intervals"],
        "estimated": estimated if share > 0 else None,
        "segments": [(_span(s["start"], s["end"]), str(s["days"]), s["effective"]) for s in segs]
        if len(segs) > 1
        else [],
        "charges": [item(x) for x in doc["lines"] if x["code"] != "tax"],
        "taxes": [item(x) for x in doc["lines"] if x["code"] == "tax"],
        "subtotal": _money(doc["subtotal"], cur),
        "total": _money(doc["total"], cur),
        "credits": [
            (f"NEM credit carried {way}", _money(doc[f"carry_{way}"], cur))
            for way in ("in", "out")
            if Decimal(doc[f"carry_{way}"])
        ],
        "notes": list(doc["notes"]),
        "delta": _delta(doc, cur),
    }


@lru_cache(maxsize=1)
def _env() -> Environment:
    loader = PackageLoader("meterledger.billing", "templates")
    opts: dict[str, Any] = {"trim_blocks": True, "lstrip_blocks": True}
    return Environment(loader=loader, autoescape=True, undefined=StrictUndefined, **opts)


def render_html(
    doc: Doc, *, kind: str = "bill", bill_id: int | None = None, replaces: int | None = None
) -> str:
    """The invoice as one self-contained HTML page (inline CSS and SVG, no scripts)."""
    view, chart = _view(doc, kind, bill_id, replaces), _chart(doc["determinants"])
    svg: dict[str, Any] | None = None
    if chart:
        left, base = _SVG["left"], _SVG["base"]
        bars, ticks = _layout(chart, left, _SVG["right"] - left, base, base - _SVG["top"])
        legend = _legend(chart)
        rows = max((row for *_, row in legend), default=0)
        svg = {
            **_SVG,
            "h": _SVG["h"] + 14 * rows,
            "legend_top": _SVG["h"] - 24,
            "legend_dx": (_SVG["right"] - _SVG["left"]) / LEGEND_PER_ROW,
            "bars": bars,
            "ticks": ticks,
            "periods": chart.periods,
            "legend": legend,
        }
    return _env().get_template("invoice.html.j2").render(v=view, svg=svg)


class _Invoice(FPDF):
    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", "", 7)
        self.set_text_color(110, 110, 110)
        self.cell(0, 5, _pdf_text(self.title or ""), align="L")
        self.set_x(self.l_margin)
        self.cell(0, 5, f"Page {self.page_no()}/{{nb}}", align="R")


def _rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def _heading(pdf: FPDF, text: str) -> None:
    pdf.ln(3)
    pdf.set_font("Helvetica", "B", 11)
    pdf.cell(0, 7, _pdf_text(text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 9)


def _para(pdf: FPDF, text: str, colour: tuple[int, int, int] = (0, 0, 0)) -> None:
    pdf.set_text_color(*colour)
    pdf.set_font("Helvetica", "B" if colour != (0, 0, 0) else "", 9)
    pdf.multi_cell(0, 5, _pdf_text(text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.set_font("Helvetica", "", 9)


def _grid(
    pdf: FPDF,
    rows: list[list[str]],
    widths: tuple[float, ...],
    head: bool = True,
    bold: tuple[int, ...] = (),
    lefts: int = 1,
) -> None:
    """A table across the page: the first ``lefts`` columns left-aligned, the others right-aligned;
    the rows whose index is in ``bold`` are bold (negative indexes count from the end)."""
    pdf.set_fill_color(255, 255, 255)  # tables take the current fill colour as their default
    with pdf.table(
        col_widths=widths,
        width=pdf.epw,
        text_align=(*["LEFT"] * lefts, *["RIGHT"] * (len(widths) - lefts)),
        line_height=5,
        headings_style=FontFace(emphasis="BOLD", fill_color=(235, 235, 235)),
        borders_layout="HORIZONTAL_LINES",
        padding=(0.8, 1.5),
        first_row_as_headings=head,
    ) as table:
        marked = {i % len(rows) for i in bold}
        for i, cells in enumerate(rows):
            style = FontFace(emphasis="BOLD") if i in marked else None
            table.row([_pdf_text(c) for c in cells], style=style)


def _pdf_chart(pdf: FPDF, chart: _Chart) -> None:
    left, width, height = pdf.l_margin + 12, pdf.epw - 12, 48.0
    if pdf.will_page_break(height + 20):
        pdf.add_page()
    top = pdf.get_y() + 6
    base = top + height
    bars, ticks = _layout(chart, left, width, base, height)
    pdf.set_font("Helvetica", "", 6.5)
    pdf.set_draw_color(200, 200, 200)
    pdf.set_line_width(0.1)
    pdf.set_xy(left - 12, top - 6)
    pdf.cell(11, 4, "kWh", align="R")
    for y, label in ticks:
        pdf.line(left, y, left + width, y)
        pdf.set_xy(left - 12, y - 2)
        pdf.cell(11, 4, label, align="R")
    for bar in bars:
        for _, colour, y, h in bar.rects:
            if h > 0:
                pdf.set_fill_color(*_rgb(colour))
                pdf.rect(bar.x, y, bar.w, h, style="F")
        if bar.label:
            pdf.set_xy(bar.x + bar.w / 2 - 6, base + 0.5)
            pdf.cell(12, 4, bar.label, align="C")
    pdf.set_draw_color(0, 0, 0)
    pdf.line(left, base, left + width, base)
    pdf.line(left, top, left, base)
    legend = _legend(chart)
    column = width / LEGEND_PER_ROW
    for name, colour, col, row in legend:
        x, y = left + col * column, base + 6 + row * 5
        pdf.set_fill_color(*_rgb(colour))
        pdf.rect(x, y + 0.8, 3, 3, style="F")
        pdf.set_xy(x + 4, y)
        pdf.cell(column - 5, 4.5, _pdf_text(name))
    rows = max((row for *_, row in legend), default=0)
    pdf.set_xy(pdf.l_margin, base + 13 + 5 * rows)


def render_pdf(
    doc: Doc,
    *,
    kind: str = "bill",
    bill_id: int | None = None,
    replaces: int | None = None,
    compress: bool = True,
) -> bytes:
    """The invoice as PDF (A4). The same document gives the same bytes: the creation date is
    the cycle end at 00:00 UTC. ``compress=False`` leaves the page streams readable."""
    v = _view(doc, kind, bill_id, replaces)
    end = date.fromisoformat(doc["determinants"]["end"])
    pdf = _Invoice(format="A4")
    pdf.core_fonts_encoding = "cp1252"
    pdf.set_compression(compress)
    pdf.set_creation_date(datetime(end.year, end.month, end.day, tzinfo=UTC))
    pdf.set_producer("meterledger")
    pdf.set_creator("meterledger")
    pdf.set_title(_pdf_text(f"Electricity bill {v['account']} {v['cycle']}"))
    pdf.set_auto_page_break(auto=True, margin=16)
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    number = f" #{bill_id}" if bill_id is not None else ""
    pdf.cell(0, 9, f"Electricity bill{number}", new_x="LMARGIN", new_y="NEXT")
    if v["banner"]:
        pdf.set_fill_color(200, 30, 30)
        pdf.set_text_color(255, 255, 255)
        pdf.cell(0, 9, v["banner"], align="C", fill=True, new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 0)
    pdf.ln(2)
    pdf.set_font("Helvetica", "", 9)
    facts = [
        ["Account", v["account"]],
        ["Meters", v["meters"]],
        ["Billing period", f"{v['period']} ({v['cycle']})"],
        ["Days", v["days"]],
        ["Tariff", v["tariff"]],
        ["Metering", v["metering"]],
        ["Time zone", v["timezone"]],
    ]
    _grid(pdf, facts, (40, 150), head=False, lefts=2)
    _heading(pdf, "Usage")
    _grid(
        pdf,
        [["Period", "Delivered kWh", "Received kWh", "Net kWh"], *v["usage"]],
        (70, 40, 40, 40),
        bold=(-1,),
    )
    demand = "; ".join(f"{n}: {kw} kW" for n, kw in v["demand"]) or "-"
    pdf.ln(1)
    _para(
        pdf, f"Max demand: {demand}. Peak demand: {v['peak_kw']} kW. Intervals: {v['intervals']}."
    )
    if v["estimated"]:
        _para(pdf, f"This bill includes estimated energy: {v['estimated']}.", (170, 90, 0))
    chart = _chart(doc["determinants"])
    if chart:
        _heading(pdf, "Daily usage by period (kWh)")
        _pdf_chart(pdf, chart)
    if v["segments"]:
        _heading(pdf, "Tariff versions")
        _grid(pdf, [["Period", "Days", "Effective"], *map(list, v["segments"])], (90, 50, 50))
    _heading(pdf, "Charges")

    def row(it: dict[str, str]) -> list[str]:
        text = f"{it['description']}\n{it['explanation']}"
        return [text, *(it[k] for k in ("quantity", "rate", "amount"))]

    subtotal = ["Subtotal", "", "", v["subtotal"]]
    rows = [["Description", "Quantity", "Rate", "Amount"], *map(row, v["charges"]), subtotal]
    rows += [*map(row, v["taxes"]), ["Total", "", "", v["total"]]]
    _grid(pdf, rows, (100, 35, 30, 25), bold=(len(v["charges"]) + 1, -1))
    for label, amount in v["credits"]:
        _para(pdf, f"{label}: {amount}")
    if v["delta"]:
        d = v["delta"]
        _heading(pdf, f"Changes from bill #{d['replaces']} (cancelled by #{d['cancel']})")
        rows = [["Charge", "Change"], *map(list, d["by_code"]), ["Total", d["total"]]]
        _grid(pdf, rows, (100, 40), bold=(-1,))
        _para(
            pdf,
            f"kWh delivered {d['kwh_delivered']}, kWh received {d['kwh_received']}, "
            f"peak kW {d['peak_kw']} (this bill less the bill it replaces).",
        )
    for note in v["notes"]:
        _para(pdf, note)
    return bytes(pdf.output())


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_invoices(
    doc: Doc,
    out_dir: Path,
    stem: str,
    *,
    kind: str = "bill",
    bill_id: int | None = None,
    replaces: int | None = None,
) -> tuple[Path, Path]:
    """Write ``stem.html`` and ``stem.pdf`` into ``out_dir`` (each atomically: a temporary file
    in the same directory, then ``os.replace``). Returns ``(html_path, pdf_path)``."""
    html = render_html(doc, kind=kind, bill_id=bill_id, replaces=replaces)
    pdf = render_pdf(doc, kind=kind, bill_id=bill_id, replaces=replaces)
    out_dir.mkdir(parents=True, exist_ok=True)
    html_path, pdf_path = out_dir / f"{stem}.html", out_dir / f"{stem}.pdf"
    _atomic_write(html_path, html.encode("utf-8"))
    _atomic_write(pdf_path, pdf)
    return html_path, pdf_path
