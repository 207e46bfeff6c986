"""The vendor API simulator on real loopback HTTP: the meters it serves (given ids, load
kinds) and outages (configured or started now) that answer every call with 503."""

from __future__ import annotations

import time

import httpx
import pytest

from meterledger.simulate.loadshapes import LoadKind
from meterledger.simulate.vendor_api import VendorApi, VendorConfig, truth

FORM = {"grant_type": "client_credentials", "client_id": "meterledger", "client_secret": "secret"}


def token(client: httpx.Client) -> httpx.Response:
    return client.post("/oauth/token", data=FORM)


def readings(client: httpx.Client, bearer: str) -> httpx.Response:
    query = {"since": "2024-06-01T00:00:00Z", "until": "2024-06-01T01:00:00Z"}
    return client.get("/v1/readings", params=query, headers={"Authorization": f"Bearer {bearer}"})


def test_given_meter_ids_and_load_kinds_are_served() -> None:
    ids = ("MTR-00001", "MTR-00002", "MTR-00003")
    config = VendorConfig(
        meter_ids=ids, intervals=96, load_kinds=(LoadKind.COMMERCIAL,), page_size=500
    )
    assert config.served_meters == ids
    assert config.kind_of(0) is LoadKind.COMMERCIAL and config.kind_of(2) is LoadKind.RESIDENTIAL
    rows = truth(config)
    assert {m for m, _, _ in rows} == set(ids) and len(rows) == 3 * 96
    default = truth(VendorConfig(meters=3, intervals=96))
    assert {m for m, _, _ in default} == {"VND-00001", "VND-00002", "VND-00003"}
    # the same seed per position: a residential meter's values do not depend on its name
    by_meter = {m: [v for mm, _, v in rows if mm == m] for m in ids}
    default_by = {m: [v for mm, _, v in default if mm == m] for m in ("VND-00002", "VND-00003")}
    assert by_meter["MTR-00002"] == default_by["VND-00002"]
    assert by_meter["MTR-00001"] != [v for m, _, v in default if m == "VND-00001"]  # commercial
    with VendorApi(config) as api, httpx.Client(base_url=api.base_url) as client:
        body = readings(client, token(client).json()["access_token"]).json()
        assert {r["meter_id"] for r in body["readings"]} == set(ids)
        assert len(body["readings"]) == 3 * 4


def test_a_configured_outage_answers_503_to_every_call_then_ends() -> None:
    with (
        VendorApi(VendorConfig(outage=(0.0, 0.5))) as api,
        httpx.Client(base_url=api.base_url) as client,
    ):
        assert api.in_outage()
        assert token(client).status_code == 503
        assert readings(client, "whatever").status_code == 503  # before any token check
        assert (api.stats.requests, api.stats.outage, api.stats.tokens) == (2, 2, 0)
        assert api.stats.failed == 2  # every 503 answered
        while api.in_outage():
            time.sleep(0.02)
        bearer = token(client).json()["access_token"]
        assert readings(client, bearer).status_code == 200
        assert (api.stats.requests, api.stats.outage, api.stats.tokens) == (4, 2, 1)


def test_an_outage_started_now_lasts_its_seconds() -> None:
    with VendorApi() as api, httpx.Client(base_url=api.base_url) as client:
        bearer = token(client).json()["access_token"]
        assert readings(client, bearer).status_code == 200 and not api.in_outage()
        api.outage(0.3)
        began = time.monotonic()
        assert readings(client, bearer).status_code == 503
        while readings(client, bearer).status_code == 503:
            time.sleep(0.02)
        assert 0.25 <= time.monotonic() - began < 1.0
        assert api.stats.outage >= 2


def test_bad_configurations_are_refused() -> None:
    with pytest.raises(ValueError, match="distinct"):
        VendorConfig(meter_ids=("A", "A"))
    with pytest.raises(ValueError, match="outage"):
        VendorConfig(outage=(2.0, 1.0))
    with pytest.raises(ValueError, match="outage"):
        VendorApi().outage(-1)
