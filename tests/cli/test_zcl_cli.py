"""``meterledger zcl decode --json`` (a contract), ``zcl encode`` and the round trip between
them, and the exit code 2 for bad hex, bad frames and bad JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterledger.cli.app import app

runner = CliRunner()

# GetProfileResponse: seq 0x2A, end time 757_382_400 (2024-01-01T00:00:00Z = 0x2D24_BD00,
# LE 00BD242D), status 0, period 2 (30 min), 3 intervals: 5, invalid, 16.
RESPONSE = "092a0000bd242d000203050000ffffff100000"
GET_PROFILE = "012a000100bd242d30"  # channel 1, same end time, 48 periods
REPORT = "18060a00002540420f00000000033000"  # CurrentSummationDelivered, UnitofMeasure
READ = "10050000000103"
READ_RESPONSE = "1805010000002540420f000000020386"
DEFAULT = "0c3710070b0081"


def decode_json(frame_hex: str, *options: str) -> dict[str, object]:
    result = runner.invoke(app, ["zcl", "decode", frame_hex, "--json", *options])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert isinstance(payload, dict)
    return payload


def test_get_profile_response_contract() -> None:
    assert decode_json(RESPONSE) == {
        "command": "get_profile_response",
        "frame_control": {
            "frame_type": "cluster_specific",
            "manufacturer_specific": False,
            "direction": "server_to_client",
            "disable_default_response": False,
        },
        "manufacturer_code": None,
        "sequence_number": 42,
        "command_id": 0,
        "end_time": 757_382_400,
        "end_time_utc": "2024-01-01T00:00:00Z",
        "status": {"code": 0, "name": "success"},
        "profile_interval_period": 2,
        "profile_interval_seconds": 1800,
        "number_of_periods_delivered": 3,
        "intervals": [5, None, 16],
    }


def test_get_profile_contract() -> None:
    payload = decode_json(GET_PROFILE, "--direction", "client")
    assert payload["command"] == "get_profile"
    assert payload["interval_channel"] == 1
    assert payload["interval_channel_name"] == "consumption_received"
    assert payload["end_time"] == 757_382_400
    assert payload["end_time_utc"] == "2024-01-01T00:00:00Z"
    assert payload["number_of_periods"] == 48


def test_attribute_commands() -> None:
    report = decode_json(REPORT)
    assert report["command"] == "report_attributes"
    assert report["records"] == [
        {
            "attribute_id": 0,
            "attribute_name": "current_summation_delivered",
            "data_type": "uint48",
            "value": 1_000_000,
        },
        {
            "attribute_id": 0x300,
            "attribute_name": "unit_of_measure",
            "data_type": "enum8",
            "value": 0,
        },
    ]
    assert decode_json(READ)["attribute_ids"] == [0, 0x0301]
    records = decode_json(READ_RESPONSE)["records"]
    assert isinstance(records, list)
    assert records[1] == {
        "attribute_id": 0x0302,
        "attribute_name": "divisor",
        "status": {"code": 0x86, "name": "unsupported_attribute"},
    }
    default = decode_json(DEFAULT)
    assert default["manufacturer_code"] == 0x1037
    assert default["command_identifier"] == 0
    assert default["status_code"] == {"code": 0x81, "name": "unsup_cluster_command"}


@pytest.mark.parametrize("frame_hex", [RESPONSE, GET_PROFILE, REPORT, READ, READ_RESPONSE, DEFAULT])
def test_decode_then_encode_gives_the_same_octets(frame_hex: str) -> None:
    result = runner.invoke(app, ["zcl", "decode", frame_hex, "--json"])
    assert result.exit_code == 0, result.output
    encoded = runner.invoke(app, ["zcl", "encode"], input=result.stdout)
    assert encoded.exit_code == 0, encoded.output
    assert encoded.stdout.strip() == frame_hex


def test_encode_from_file_with_end_time_utc(tmp_path: Path) -> None:
    body = {
        "command": "get_profile",
        "sequence_number": 42,
        "interval_channel": 1,
        "end_time_utc": "2024-01-01T00:00:00Z",
        "number_of_periods": 48,
    }
    path = tmp_path / "frame.json"
    path.write_text(json.dumps(body), encoding="utf-8")
    result = runner.invoke(app, ["zcl", "encode", "--json-file", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == GET_PROFILE


def test_encode_response_by_names() -> None:
    body = {
        "command": "get_profile_response",
        "sequence_number": 42,
        "end_time_utc": "2024-01-01T00:00:00+00:00",
        "status": "success",
        "profile_interval_period": "minutes_30",
        "intervals": [5, None, 16],
    }
    result = runner.invoke(app, ["zcl", "encode"], input=json.dumps(body))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == RESPONSE


def test_readable_table() -> None:
    result = runner.invoke(app, ["zcl", "decode", RESPONSE])
    assert result.exit_code == 0, result.output
    assert "get_profile_response" in result.stdout
    assert "2023-12-31T23:30:00Z" in result.stdout  # the second interval's end
    assert "invalid (gap)" in result.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["zcl", "decode", "09zz"], "not hex"),
        (["zcl", "decode", ""], "no octets"),
        (["zcl", "decode", RESPONSE[:-2]], "frame ends in interval 3 of 3"),
        (["zcl", "decode", RESPONSE + "00"], "after the end"),
        (["zcl", "decode", "0a0100"], "frame type 2"),
        (["zcl", "decode", RESPONSE, "--direction", "client"], "server_to_client"),
        (["zcl", "decode", GET_PROFILE, "--cluster", "0x0006"], "0x0006"),
        (["zcl", "decode", GET_PROFILE, "--cluster", "six"], "not a number"),
    ],
)
def test_bad_input_exits_2(args: list[str], words: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert words in result.output


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("not json", "not JSON"),
        ("[]", "JSON object"),
        ('{"command": "bogus"}', "command must be one of"),
        ('{"command": "get_profile", "sequence_number": 1}', "interval_channel"),
        (
            '{"command": "get_profile", "sequence_number": 1, "interval_channel": 0,'
            ' "number_of_periods": 1, "end_time": 5, "end_time_utc": "2024-01-01T00:00:00Z"}',
            "disagree",
        ),
        (
            '{"command": "get_profile_response", "sequence_number": 1, "end_time": 0,'
            ' "status": 9, "profile_interval_period": 0, "intervals": []}',
            "not a ProfileStatus",
        ),
        (
            '{"command": "get_profile_response", "sequence_number": 1, "end_time": 0,'
            ' "status": 0, "profile_interval_period": 0, "intervals": [16777215]}',
            "None",
        ),
        (
            '{"command": "read_attributes", "sequence_number": 300, "attribute_ids": []}',
            "sequence_number 300",
        ),
    ],
)
def test_bad_json_exits_2(body: str, words: str) -> None:
    result = runner.invoke(app, ["zcl", "encode"], input=body)
    assert result.exit_code == 2
    assert words in result.output


def test_help_texts() -> None:
    for command in ("decode", "encode"):
        result = runner.invoke(app, ["zcl", command, "--help"])
        assert result.exit_code == 0
        assert "ZCL frame" in result.stdout
