"""collect/drops.py: the stable-file rule, checksums, atomic moves, and SFTP listing,
download and archive against a real asyncssh SFTP server on loopback (no mocks)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import asyncssh
import pytest

from meterledger.collect.drops import (
    DOWNLOAD_BLOCK,
    INCOMING,
    FileState,
    SftpDrop,
    SftpEndpoint,
    StableFiles,
    is_drop_name,
    local_listing,
    move_atomically,
    sha256_of,
    target_in,
)
from meterledger.collect.errors import ConnectionLostError, SecurityLevelError
from sftp_server import SftpServer

# -- names, the stable-file rule, checksums, moves ------------------------------------------


@pytest.mark.parametrize(
    ("name", "taken"),
    [
        ("a.csv", True),
        ("A.CSV", True),
        ("b.jsonl", True),
        ("b.ndjson", True),
        ("c.xml", True),
        ("c.xml.gz", True),
        ("d.csv.gz", True),
        ("d.csv.part", False),
        ("d.csv.tmp", False),
        ("d.csv.gz.part", False),
        (".hidden.csv", False),
        ("notes.txt", False),
        ("archive.gz", False),
        ("", False),
    ],
)
def test_drop_names(name: str, taken: bool) -> None:
    assert is_drop_name(name) is taken


def test_stable_after_settle_seconds_unchanged() -> None:
    files = StableFiles(2.0)
    assert files.observe({"a.csv": FileState(10, 1)}, now=100.0) == []
    assert files.observe({"a.csv": FileState(10, 1)}, now=101.9) == []
    assert files.observe({"a.csv": FileState(10, 1)}, now=102.0) == ["a.csv"]


def test_a_growing_file_waits_again() -> None:
    files = StableFiles(2.0)
    files.observe({"a.csv": FileState(10, 1)}, now=100.0)
    assert files.observe({"a.csv": FileState(20, 2)}, now=103.0) == []  # grew: clock restarts
    assert files.observe({"a.csv": FileState(20, 2)}, now=104.9) == []
    assert files.observe({"a.csv": FileState(20, 2)}, now=105.0) == ["a.csv"]


def test_mtime_change_alone_resets_and_gone_names_are_forgotten() -> None:
    files = StableFiles(1.0)
    files.observe({"a.csv": FileState(5, 1), "b.csv": FileState(5, 1)}, now=0.0)
    assert files.observe({"a.csv": FileState(5, 2), "b.csv": FileState(5, 1)}, now=1.0) == ["b.csv"]
    assert files.observe({}, now=2.0) == []
    assert files.waiting() == []
    assert files.observe({"a.csv": FileState(5, 2)}, now=2.5) == []  # back: waits again


def test_settle_zero_takes_at_first_sight_sorted_and_forget() -> None:
    files = StableFiles(0)
    listing = {"b.csv": FileState(1, 1), "a.csv": FileState(1, 1)}
    assert files.observe(listing, now=0.0) == ["a.csv", "b.csv"]
    assert files.waiting() == ["a.csv", "b.csv"]
    files.forget("a.csv")
    assert files.waiting() == ["b.csv"]
    with pytest.raises(ValueError, match="not negative"):
        StableFiles(-1)


def test_local_listing_skips_partial_hidden_dirs_and_links(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_bytes(b"12345")
    (tmp_path / "a.csv.part").write_bytes(b"1")
    (tmp_path / "b.tmp").write_bytes(b"1")
    (tmp_path / ".c.csv").write_bytes(b"1")
    (tmp_path / "readme.txt").write_bytes(b"1")
    (tmp_path / "sub.csv").mkdir()
    (tmp_path / "link.csv").symlink_to(tmp_path / "a.csv")
    listing = local_listing(tmp_path)
    assert list(listing) == ["a.csv"]
    assert listing["a.csv"].size == 5
    assert listing["a.csv"].mtime == (tmp_path / "a.csv").stat().st_mtime_ns


def test_sha256_of_matches_hashlib_across_blocks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 9000  # > one 1 MiB hash block
    path = tmp_path / "big.csv"
    path.write_bytes(data)
    assert sha256_of(path) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty.csv").write_bytes(b"")
    assert sha256_of(tmp_path / "empty.csv") == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_target_in_never_overwrites_and_move_is_a_rename(tmp_path: Path) -> None:
    done = tmp_path / "processed"
    digest = "ab" * 32
    assert target_in(done, "a.csv", digest) == done / "a.csv"
    source = tmp_path / "a.csv"
    source.write_bytes(b"one")
    inode = source.stat().st_ino
    moved = move_atomically(source, target_in(done, "a.csv", digest))
    assert moved == done / "a.csv" and not source.exists()
    assert moved.stat().st_ino == inode  # renamed, not copied
    assert target_in(done, "a.csv", digest) == done / f"{'ab' * 6}.a.csv"


# -- a real SFTP server on loopback (tests/sftp_server.py) ---------------------------------


@pytest.fixture
def server(tmp_path: Path) -> Iterator[SftpServer]:
    running = SftpServer(tmp_path)
    yield running
    running.close()


async def _session(endpoint: SftpEndpoint, local: Path, name: str) -> Path | None:
    async with SftpDrop(endpoint) as drop:
        listing = await drop.listing()
        return await drop.download(listing[name], local)


def test_listing_download_and_archive(server: SftpServer, tmp_path: Path) -> None:
    data = b"meter_id,channel\n" * 10_000  # several download blocks
    server.put("a.csv", data)
    server.put("a.csv.part", b"partial")
    server.put(".hidden.csv", b"x")
    (server.root / "in" / "sub.csv").mkdir()
    local = tmp_path / "local"

    async def run() -> tuple[list[str], Path | None, str, list[str]]:
        async with SftpDrop(server.endpoint()) as drop:
            listing = await drop.listing()
            path = await drop.download(listing["a.csv"], local)
            archived = await drop.archive(listing["a.csv"], "cd" * 32)
            server.put("a.csv", b"other")  # a second file of that name later
            again = await drop.listing()
            second = await drop.archive(again["a.csv"], "cd" * 32)
            return sorted(listing), path, archived, [archived, second]

    names, path, archived, both = asyncio.run(run())
    assert names == ["a.csv"]
    assert path == local / "a.csv" and path.read_bytes() == data
    assert list((local / INCOMING).iterdir()) == []
    assert archived == "/in/processed/a.csv"
    assert both[1] == f"/in/processed/{'cd' * 6}.a.csv"
    assert (server.root / "in" / "processed" / "a.csv").read_bytes() == data
    assert not (server.root / "in" / "a.csv").exists()


def test_a_file_growing_during_the_download_is_not_kept(server: SftpServer, tmp_path: Path) -> None:
    server.put("grow.csv", b"y" * 1000)
    local = tmp_path / "local"

    async def run() -> Path | None:
        async with SftpDrop(server.endpoint()) as drop:
            listing = await drop.listing()
            server.put("grow.csv", b"y" * 1500)  # the upload went on after the listing
            return await drop.download(listing["grow.csv"], local)

    assert asyncio.run(run()) is None
    assert sorted(p.name for p in local.iterdir()) == [INCOMING]
    assert list((local / INCOMING).iterdir()) == []


def test_connection_cut_mid_transfer_leaves_nothing(server: SftpServer, tmp_path: Path) -> None:
    data = b"z" * (DOWNLOAD_BLOCK * 4)
    server.put("cut.csv", data)
    server.faults.cut.add("cut.csv")
    local = tmp_path / "local"
    with pytest.raises(ConnectionLostError, match="E02"):
        asyncio.run(_session(server.endpoint(), local, "cut.csv"))
    assert not (local / "cut.csv").exists()
    assert list((local / INCOMING).iterdir()) == []
    server.faults.cut.clear()  # the next attempt fetches it whole
    path = asyncio.run(_session(server.endpoint(), local, "cut.csv"))
    assert path is not None and path.read_bytes() == data


def test_listing_sees_growth_between_listings(server: SftpServer) -> None:
    server.put("up.csv", b"a")
    server.faults.grow.add("up.csv")

    async def run() -> tuple[int, int]:
        async with SftpDrop(server.endpoint()) as drop:
            first = (await drop.listing())["up.csv"].state.size
            second = (await drop.listing())["up.csv"].state.size
            return first, second

    assert asyncio.run(run()) == (101, 201)
    assert server.faults.listings == 2


def test_wrong_key_and_unknown_host_are_security_errors(server: SftpServer, tmp_path: Path) -> None:
    other = tmp_path / "other_key"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(other))
    with pytest.raises(SecurityLevelError, match=r"E09.*login refused"):
        asyncio.run(_session(server.endpoint(key_file=other), tmp_path, "x.csv"))
    stranger = tmp_path / "known_hosts_other"
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
    stranger.write_text(f"[127.0.0.1]:{server.port} {key}")
    with pytest.raises(SecurityLevelError, match=r"E09.*host key"):
        asyncio.run(_session(server.endpoint(known_hosts=stranger), tmp_path, "x.csv"))


def test_endpoint_checks_its_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not both"):
        SftpEndpoint("h", "u", "/in", key_file=tmp_path / "k", password="p")
    with pytest.raises(ValueError, match="remote directory"):
        SftpEndpoint("h", "u", "")
