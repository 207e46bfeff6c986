"""The ``meterledger`` command."""

from __future__ import annotations

import typer

from meterledger import __version__
from meterledger.cli import (
    accounts,
    anomalies,
    audit,
    bill,
    collect,
    cycle,
    db,
    demo,
    dlms,
    drops,
    feeds,
    ingest,
    meters,
    mqtt,
    quarantine,
    readings,
    registers,
    simulate,
    vee,
    vendor,
    zcl,
    zigbee,
)
from meterledger.cli.common import DbOption, JsonOption, emit_json, handle_errors, open_db, out
from meterledger.store.urls import redact_url

app = typer.Typer(
    name="meterledger",
    help="From the smart meter to the bill: ingest readings exactly once, quarantine what is "
    "wrong, keep an audit chain nobody can rewrite.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(meters.app, name="meters")
app.add_typer(quarantine.app, name="quarantine")
app.add_typer(audit.app, name="audit")
app.add_typer(readings.app, name="readings")
app.add_typer(db.app, name="db")
app.add_typer(accounts.tariffs_app, name="tariffs")
app.add_typer(accounts.accounts_app, name="accounts")
app.add_typer(cycle.cycle_app, name="cycle")
app.add_typer(cycle.bills_app, name="bills")
app.add_typer(cycle.invoices_app, name="invoices")
app.command("ingest")(ingest.command)
app.command("bill")(bill.command)
app.command("collect")(collect.command)
app.add_typer(dlms.app, name="dlms")
app.add_typer(simulate.app, name="simulate")
app.add_typer(vee.app, name="vee")
app.add_typer(anomalies.app, name="anomalies")
app.add_typer(registers.app, name="registers")
app.add_typer(zcl.app, name="zcl")
app.add_typer(zigbee.app, name="zigbee")
app.add_typer(mqtt.app, name="mqtt")
app.add_typer(drops.app, name="drops")
app.add_typer(vendor.app, name="vendor")


@app.command("init")
@handle_errors
def init(db_url: DbOption = None, json_out: JsonOption = False) -> None:
    """Create the store (or bring it to the latest schema)."""
    store = open_db(db_url)
    version = store.schema_version()
    if json_out:
        emit_json({"db": redact_url(store.url), "schema_version": version})
    else:
        out.print(f"store {redact_url(store.url)} ready at schema version {version}")


@app.command("version")
def version() -> None:
    """Print the version."""
    out.print(__version__)


app.command("demo")(demo.command)

# resilience: dead letters, emergency pause, the feeds at a glance
app.add_typer(feeds.deadletters_app, name="deadletters")
app.command("pause")(feeds.pause)
app.command("resume")(feeds.resume)
app.command("status")(feeds.status)


def main() -> None:
    app()
