"""File drops: a watched directory and an SFTP pull, without ever reading a partial file.

The parts that need no store live here (``cli/drops.py`` composes them with the store
and ingest):

- :class:`StableFiles` takes a file only once its size and mtime have stayed the same for
  ``settle`` seconds by our own clock, so a file still being written is left alone;
  names ending in ``.part`` or ``.tmp``, dot-files and names that are no reading format
  (``.csv``, ``.jsonl``, ``.ndjson``, ``.xml``, each optionally ``.gz``) are never taken.
- :func:`sha256_of` is the checksum a file is known by, :func:`target_in` and
  :func:`move_atomically` move it aside with ``os.replace`` (same file system: atomic).
- :class:`SftpDrop` lists a remote directory over SFTP (asyncssh), downloads a complete
  file to ``<local>/.incoming/<name>.part``, checks its size against the listing and the
  remote file again, fsyncs it and only then renames it into the local directory; a
  transfer that is cut off leaves no file behind. After the file is processed,
  :meth:`SftpDrop.archive` renames the remote file into ``<remote-dir>/processed/``.

asyncssh and OS errors become :mod:`meterledger.collect.errors` errors here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import posixpath
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import cast

import asyncssh

from meterledger.collect.errors import (
    CollectError,
    ConnectFailedError,
    ConnectionLostError,
    ResponseTimeoutError,
    SecurityLevelError,
)

__all__ = [
    "DROP_SUFFIXES",
    "DUPLICATES",
    "FAILED",
    "INCOMING",
    "PARTIAL_SUFFIXES",
    "PROCESSED",
    "FileState",
    "RemoteFile",
    "SftpDrop",
    "SftpEndpoint",
    "StableFiles",
    "is_drop_name",
    "local_listing",
    "move_atomically",
    "sha256_of",
    "target_in",
]

DROP_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".xml")
PARTIAL_SUFFIXES = (".part", ".tmp")
INCOMING = ".incoming"  # where a download is written before it is renamed into place
PROCESSED = "processed"
DUPLICATES = "duplicates"  # under the processed directory: content seen before
FAILED = "failed"  # under the processed directory: a file that is not readable at all
HASH_BLOCK = 1 << 20
DOWNLOAD_BLOCK = 1 << 16


def is_drop_name(name: str) -> bool:
    """Whether a file of this name may be taken: a reading format, not partial, not hidden."""
    lower = name.lower()
    if not name or name.startswith(".") or lower.endswith(PARTIAL_SUFFIXES):
        return False
    return lower.removesuffix(".gz").endswith(DROP_SUFFIXES)


@dataclass(frozen=True, slots=True)
class FileState:
    """What a listing says of a file: its size in bytes and its mtime (any fixed unit)."""

    size: int
    mtime: int


class StableFiles:
    """Remembers each file's state between scans: :meth:`observe` returns the names whose
    state has been the same for at least ``settle`` seconds (``now`` is a monotonic clock
    reading; with ``settle`` 0 the first sighting is enough). A name that changes starts its
    wait again; a name no longer listed is forgotten."""

    def __init__(self, settle: float) -> None:
        if settle < 0:
            raise ValueError("settle is not negative")
        self.settle = settle
        self._seen: dict[str, tuple[FileState, float]] = {}

    def observe(self, listing: Mapping[str, FileState], now: float) -> list[str]:
        ready: list[str] = []
        seen: dict[str, tuple[FileState, float]] = {}
        for name in sorted(listing):
            state = listing[name]
            before = self._seen.get(name)
            since = before[1] if before is not None and before[0] == state else now
            seen[name] = (state, since)
            if now - since >= self.settle:
                ready.append(name)
        self._seen = seen
        return ready

    def waiting(self) -> list[str]:
        """The names seen but not yet stable long enough (sorted)."""
        return sorted(self._seen)

    def forget(self, name: str) -> None:
        """Drop ``name`` (taken or moved away): if it comes back it waits again."""
        self._seen.pop(name, None)


def local_listing(directory: Path) -> dict[str, FileState]:
    """The regular files directly in ``directory`` that :func:`is_drop_name` allows
    (symbolic links and sub-directories are not followed); mtime in nanoseconds."""
    listing: dict[str, FileState] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            if not is_drop_name(entry.name) or not entry.is_file(follow_symlinks=False):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # moved away between the listing and the stat
            listing[entry.name] = FileState(info.st_size, info.st_mtime_ns)
    return listing


def sha256_of(path: Path) -> str:
    """The SHA-256 of the file's bytes, 64 lower-case hex digits."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def target_in(directory: Path, name: str, sha256: str) -> Path:
    """Where a file called ``name`` goes in ``directory``: under its own name, or, when a
    different file already has that name, prefixed with the first 12 hex digits of its
    checksum (so nothing moved aside earlier is overwritten)."""
    plain = directory / name
    if not plain.exists():
        return plain
    return directory / f"{sha256[:12]}.{name}"


def _fsync_directory(directory: Path) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:
        return  # a platform that cannot open a directory: the rename is still atomic
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def move_atomically(source: Path, target: Path) -> Path:
    """Rename ``source`` to ``target`` with ``os.replace`` (creating the directory), then
    fsync the directory so the rename survives a power cut. Both must be on one file
    system: across file systems the rename fails rather than copying half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(source, target)
    _fsync_directory(target.parent)
    return target


# -- SFTP -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SftpEndpoint:
    """An SFTP server and how to log in: a private key file or a password. ``known_hosts``
    is the file the server's host key is checked against (None: asyncssh's default,
    ``~/.ssh/known_hosts``)."""

    host: str
    username: str
    remote_dir: str
    port: int = 22
    key_file: Path | None = None
    password: str | None = None
    known_hosts: Path | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.key_file is not None and self.password is not None:
            raise ValueError("give a key file or a password, not both")
        if not self.remote_dir:
            raise ValueError("a remote directory is required")


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """A file in the remote directory: its name, full remote path and listed state."""

    name: str
    path: str
    state: FileState


def _translate(exc: BaseException, what: str) -> CollectError:
    if isinstance(exc, CollectError):
        return exc
    if isinstance(exc, asyncssh.PermissionDenied):
        return SecurityLevelError(f"{what}: login refused ({exc.reason})")
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        return SecurityLevelError(f"{what}: host key not verifiable ({exc.reason})")
    if isinstance(exc, asyncssh.SFTPError):
        return CollectError(f"{what}: {exc.reason or type(exc).__name__}")
    if isinstance(exc, asyncssh.Error):
        return ConnectionLostError(f"{what}: {exc.reason or type(exc).__name__}")
    if isinstance(exc, TimeoutError):
        return ResponseTimeoutError(f"{what}: no answer in time")
    if isinstance(exc, ConnectionRefusedError):
        return ConnectFailedError(f"{what}: connection refused")
    if isinstance(exc, ConnectionError | EOFError | asyncio.IncompleteReadError):
        return ConnectionLostError(f"{what}: {exc or type(exc).__name__}")
    if isinstance(exc, OSError):
        return ConnectFailedError(f"{what}: {exc.strerror or exc}")
    return CollectError(f"{what}: {type(exc).__name__}: {exc}")


def _is_regular(attrs: asyncssh.SFTPAttrs) -> bool:
    if attrs.permissions is not None:
        return stat.S_ISREG(attrs.permissions)
    return attrs.type == asyncssh.FILEXFER_TYPE_REGULAR


def _state_of(attrs: asyncssh.SFTPAttrs) -> FileState:
    mtime_ns = attrs.mtime_ns if attrs.mtime_ns is not None else (attrs.mtime or 0) * 10**9
    return FileState(attrs.size or 0, mtime_ns)


class SftpDrop:
    """One SFTP session on ``endpoint``: ``async with SftpDrop(endpoint) as drop:`` then
    :meth:`listing`, :meth:`download` and :meth:`archive`."""

    def __init__(self, endpoint: SftpEndpoint) -> None:
        self.endpoint = endpoint
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None

    @property
    def _where(self) -> str:
        e = self.endpoint
        return f"sftp://{e.username}@{e.host}:{e.port}{e.remote_dir}"

    async def __aenter__(self) -> SftpDrop:
        e = self.endpoint
        options: dict[str, object] = {
            "username": e.username,
            "known_hosts": str(e.known_hosts) if e.known_hosts is not None else (),
            "connect_timeout": e.timeout,
            "agent_path": None,
        }
        if e.key_file is not None:
            options["client_keys"] = [str(e.key_file)]
            options["password"] = None
        else:
            options["client_keys"] = None
            options["password"] = e.password
        try:
            self._conn = await asyncssh.connect(e.host, e.port, **options)
            self._sftp = await self._conn.start_sftp_client()
        except Exception as exc:
            await self.close()
            raise _translate(exc, self._where) from exc
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._sftp is not None:
            self._sftp.exit()
            self._sftp = None
        if self._conn is not None:
            self._conn.close()
            with contextlib.suppress(Exception):
                await self._conn.wait_closed()
            self._conn = None

    @property
    def sftp(self) -> asyncssh.SFTPClient:
        if self._sftp is None:
            raise ConnectionLostError(f"{self._where}: the session is closed")
        return self._sftp

    async def listing(self) -> dict[str, RemoteFile]:
        """The regular files in the remote directory that :func:`is_drop_name` allows."""
        directory = self.endpoint.remote_dir
        try:
            names = await self.sftp.readdir(directory)
        except Exception as exc:
            raise _translate(exc, f"{self._where}: listing") from exc
        files: dict[str, RemoteFile] = {}
        for entry in names:
            name = str(entry.filename)
            if is_drop_name(name) and _is_regular(entry.attrs):
                files[name] = RemoteFile(
                    name, posixpath.join(directory, name), _state_of(entry.attrs)
                )
        return files

    async def download(self, remote: RemoteFile, local_dir: Path) -> Path | None:
        """Fetch ``remote`` whole into ``local_dir`` (via ``.incoming/<name>.part``, size
        checked, fsynced, renamed). Returns the local path, or None when the file changed
        while it was read (it is fetched next time). A lost connection raises; either way
        no partial file is left in ``local_dir``."""
        incoming = local_dir / INCOMING
        incoming.mkdir(parents=True, exist_ok=True)
        part = incoming / f"{remote.name}.part"
        try:
            complete = await self._fetch(remote, part)
            if not complete:
                part.unlink(missing_ok=True)
                return None
            # a different file of that name still waiting here is never overwritten
            return move_atomically(part, target_in(local_dir, remote.name, sha256_of(part)))
        except BaseException:
            part.unlink(missing_ok=True)
            raise

    async def _fetch(self, remote: RemoteFile, part: Path) -> bool:
        written = 0
        try:
            async with self.sftp.open(remote.path, "rb") as source:
                with part.open("wb") as sink:
                    while block := await source.read(DOWNLOAD_BLOCK, written):
                        sink.write(cast(bytes, block))  # opened "rb": bytes
                        written += len(block)
                    sink.flush()
                    os.fsync(sink.fileno())
            after = _state_of(await self.sftp.stat(remote.path))
        except asyncssh.SFTPNoSuchFile:
            return False  # gone (taken by someone else) between the listing and now
        except Exception as exc:
            raise _translate(exc, f"{self._where}: download of {remote.name}") from exc
        return written == remote.state.size and after == remote.state

    async def archive(self, remote: RemoteFile, sha256: str) -> str:
        """Rename the remote file into ``<remote-dir>/processed/`` (made if missing), under
        its own name or, if that is taken, prefixed with 12 hex digits of its checksum.
        Returns the new remote path."""
        processed = posixpath.join(self.endpoint.remote_dir, PROCESSED)
        try:
            if not await self.sftp.isdir(processed):
                with contextlib.suppress(asyncssh.SFTPFailure):  # made by a rival meanwhile
                    await self.sftp.mkdir(processed)
            target = posixpath.join(processed, remote.name)
            if await self.sftp.exists(target):
                target = posixpath.join(processed, f"{sha256[:12]}.{remote.name}")
            await self.sftp.rename(remote.path, target)
        except Exception as exc:
            raise _translate(exc, f"{self._where}: archiving {remote.name}") from exc
        return target
