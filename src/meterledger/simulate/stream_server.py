"""The asyncio TCP server life cycle the simulators share: listen, serve each connection in
a task of its own, and on close end every connection and wait for their tasks, quietly.

A subclass says how to start listening (:meth:`StreamServer.start_default`) and how to serve
one connection (:meth:`StreamServer.serve`); a connection that breaks (or whose peer breaks
the protocol, :attr:`StreamServer.ends`) ends alone, the others go on."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, ClassVar, Self

__all__ = ["StreamServer"]


class StreamServer(ABC):
    """``async with`` serves; ``port`` is the port listened on; ``stats`` counts."""

    what: ClassVar[str] = "the server"  # for the error when asked for a port too early
    ends: ClassVar[tuple[type[BaseException], ...]] = ()  # errors that end one connection

    def __init__(self) -> None:
        self.stats: dict[str, int] = {"connections": 0}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._closing = False

    @property
    def port(self) -> int:
        """The port listened on (the one chosen when the config said 0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError(f"{self.what} is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    async def listen(self, host: str, port: int, **options: Any) -> None:
        self._server = await asyncio.start_server(
            self.handle_connection, host, port, reuse_address=True, **options
        )

    @abstractmethod
    async def start_default(self) -> None:
        """Start listening where the configuration says."""

    @abstractmethod
    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve one connection until the peer goes away."""

    async def run_forever(self) -> None:
        """Serve until cancelled (Ctrl-C in the CLI)."""
        if self._server is None:
            await self.start_default()
        assert self._server is not None
        await self._server.serve_forever()

    async def close(self) -> None:
        """Stop listening, end every connection and wait for their tasks."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start_default()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    async def handle_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one client connection (any stream pair, e.g. an in-memory one) to its end."""
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        self.stats["connections"] += 1
        broken: tuple[type[BaseException], ...] = (
            ConnectionError,
            asyncio.IncompleteReadError,
            *self.ends,
        )
        try:
            await self.serve(reader, writer)
        except broken:
            pass  # a broken stream or peer: this connection ends, the others go on
        except asyncio.CancelledError:
            if not self._closing:
                raise
            # Shutting down: end quietly (asyncio's stream callback would log a cancelled
            # handler task as an error).
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()
