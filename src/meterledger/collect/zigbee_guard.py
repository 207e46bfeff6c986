"""The link to one Zigbee gateway for a collection run: reopened after it is lost, and
passed through the gateway's circuit breaker.

:class:`GatewayLink` has the ``request`` of :class:`~meterledger.collect.zigbee_link.ZigbeeLink`
over any :class:`~meterledger.collect.zigbee_link.ZigbeeTransport` (TCP or MQTT):

* ``async with`` connects once, so a gateway that cannot be reached fails every meter at
  once (E01) rather than each in turn;
* a request whose connection is lost (E02) is sent once more on a new connection: the
  reads are idempotent, and a gateway that rebooted is read on. A second loss, or a new
  connection that fails (E01), is that request's error;
* with a breaker, each request waits while the circuit is open (at most ``wait`` seconds,
  then E03, :func:`~meterledger.collect.breaker.wait_until_allowed`) and its outcome is
  recorded: a timeout or a lost or refused connection is a failure; any answer, even a
  Default Response refusal (E06), proves the gateway works and is a success. Connecting
  takes no probe (a gateway that accepts a connection may still not answer), but while
  the circuit is open nothing connects.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AbstractAsyncContextManager
from types import TracebackType

from meterledger.codec.zigbee import ZclCommand
from meterledger.collect.breaker import BreakerState, CircuitBreaker, wait_until_allowed
from meterledger.collect.errors import CircuitOpenError, CollectError, ConnectionLostError
from meterledger.collect.zigbee_link import METER_ENDPOINT, ZigbeeLink, ZigbeeTransport

__all__ = ["GatewayLink"]


class GatewayLink:
    """Requests to the meters behind one gateway during a run (see the module's text)."""

    def __init__(
        self,
        transport: ZigbeeTransport,
        timeout: float,
        breaker: CircuitBreaker | None = None,
        wait: float = 0.0,
    ) -> None:
        self.transport, self.timeout, self.breaker, self.wait = transport, timeout, breaker, wait
        self.connections = 0  # how many times a connection was opened
        self._opened: AbstractAsyncContextManager[ZigbeeLink] | None = None
        self._current: ZigbeeLink | None = None
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> GatewayLink:
        breaker = self.breaker
        if breaker is not None and breaker.state is BreakerState.OPEN:
            if breaker.retry_after() > self.wait:
                raise CircuitOpenError(
                    f"circuit {breaker.name} is open (retry in {breaker.retry_after():.1f} s)"
                )
            await asyncio.sleep(breaker.retry_after())
        try:
            await self._link()
        except CollectError as error:
            if breaker is not None and error.transient:
                breaker.record_failure()
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self._drop(self._current)

    async def _link(self) -> ZigbeeLink:
        async with self._lock:  # one connection at a time, however many meters ask
            if self._current is None:
                opened = self.transport.connect(self.timeout)
                self._current = await opened.__aenter__()
                self._opened = opened
                self.connections += 1
            return self._current

    async def _drop(self, link: ZigbeeLink | None) -> None:
        async with self._lock:
            if link is None or link is not self._current or self._opened is None:
                return  # another request already dropped it (and maybe reconnected)
            opened, self._opened, self._current = self._opened, None, None
        with contextlib.suppress(CollectError, OSError):
            await opened.__aexit__(None, None, None)

    async def _send(self, eui64: bytes, command: ZclCommand, endpoint: int) -> ZclCommand:
        for attempt in (1, 2):
            link = await self._link()
            try:
                return await link.request(eui64, command, endpoint=endpoint)
            except ConnectionLostError:
                await self._drop(link)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def request(
        self, eui64: bytes, command: ZclCommand, *, endpoint: int = METER_ENDPOINT
    ) -> ZclCommand:
        """Send ``command`` to the meter and return its answer's command."""
        breaker = self.breaker
        if breaker is None:
            return await self._send(eui64, command, endpoint)
        await wait_until_allowed(breaker, deadline=breaker.clock() + self.wait)
        try:
            answer = await self._send(eui64, command, endpoint)
        except CollectError as error:
            if error.transient:
                breaker.record_failure()
            else:
                breaker.record_success()
            raise
        except BaseException:
            breaker.release()
            raise
        breaker.record_success()
        return answer
