"""A real SFTP server on loopback for the drops tests (asyncssh, its own thread and event
loop), with the faults a vendor's server shows: a file still growing while it is listed,
and a connection cut off in the middle of a download."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh

from meterledger.collect.drops import SftpEndpoint

__all__ = ["Faults", "FaultySftp", "SftpServer"]


class Faults:
    """What the test server does wrong: append to ``grow`` files at every listing (an
    upload still running), abort the connection while ``cut`` files are read (``cuts``
    more times, or always)."""

    def __init__(self) -> None:
        self.grow: set[str] = set()
        self.cut: set[str] = set()
        self.cuts: int | None = None  # how many more cuts (None: every time)
        self.listings = 0


class FaultySftp(asyncssh.SFTPServer):
    def __init__(self, chan: asyncssh.SSHServerChannel, root: Path, faults: Faults) -> None:
        super().__init__(chan, chroot=os.fsencode(root))
        self.root = root
        self.faults = faults

    async def scandir(self, path: bytes) -> AsyncIterator[asyncssh.SFTPName]:
        self.faults.listings += 1
        for name in sorted(self.faults.grow):
            with (self.root / "in" / name).open("ab") as handle:
                handle.write(b"x" * 100)
        async for entry in super().scandir(path):
            yield entry

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        name = Path(getattr(file_obj, "name", b"").decode()).name
        if offset > 0 and name in self.faults.cut and self.faults.cuts != 0:
            if self.faults.cuts is not None:
                self.faults.cuts -= 1
            self.connection.abort()
        data = super().read(file_obj, offset, size)
        assert isinstance(data, bytes)
        return data


class SftpServer:
    """asyncssh listening on 127.0.0.1 in its own thread and event loop; the client logs in
    with a generated key, the host key is pinned in a known_hosts file."""

    def __init__(self, base: Path) -> None:
        self.root = base / "server"
        (self.root / "in").mkdir(parents=True)
        self.faults = Faults()
        host_key = asyncssh.generate_private_key("ssh-ed25519")
        client_key = asyncssh.generate_private_key("ssh-ed25519")
        self.key_file = base / "client_key"
        client_key.write_private_key(str(self.key_file))
        self.key_file.chmod(0o600)
        authorized = base / "authorized_keys"
        client_key.write_public_key(str(authorized))
        self._host_key = host_key
        self._authorized = authorized
        self.known_hosts = base / "known_hosts"
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(10)
        self.port = int(self._server.sockets[0].getsockname()[1])
        public = host_key.export_public_key().decode().strip()
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {public}\n")

    async def _listen(self) -> asyncssh.SSHAcceptor:
        return await asyncssh.listen(
            "127.0.0.1",
            0,
            server_host_keys=[self._host_key],
            authorized_client_keys=str(self._authorized),
            sftp_factory=lambda chan: FaultySftp(chan, self.root, self.faults),
            allow_scp=False,
        )

    def endpoint(self, **changes: object) -> SftpEndpoint:
        options: dict[str, object] = {
            "port": self.port,
            "key_file": self.key_file,
            "known_hosts": self.known_hosts,
            "timeout": 10.0,
        }
        options.update(changes)
        return SftpEndpoint("127.0.0.1", "meter", "/in", **options)  # type: ignore[arg-type]

    def put(self, name: str, data: bytes) -> Path:
        path = self.root / "in" / name
        path.write_bytes(data)
        return path

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
