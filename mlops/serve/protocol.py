"""uvicorn's httptools protocol with receive deadlines: uvicorn has none (uvicorn#157), so a client that opens a
connection and sends nothing, or a request head or body one byte at a time, would hold it for ever.

One timer per request, armed when the connection opens (a silent client) or when a request's first byte arrives,
and cancelled once the whole request is in: the head must arrive within `header_timeout` seconds, then the body
within `body_timeout` more. On expiry the client gets a 408 naming the limit (unless its answer has started) and
the connection is closed; a handler still reading the body sees a disconnect. Between requests uvicorn's own
keep-alive timeout closes idle connections. The cost on the hot path is one timer armed and cancelled per request.
"""

from __future__ import annotations

import logging
from asyncio import TimerHandle, Transport
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("mlops.serve")


def _timeout_response(message: str) -> bytes:
    body = b'{"error": "' + message.encode() + b'"}'
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)


class GuardedProtocol(HttpToolsProtocol):
    """Set `header_timeout` and `body_timeout` on a subclass (uvicorn instantiates the class it is given)."""

    header_timeout = 10.0
    body_timeout = 30.0
    _deadline: TimerHandle | None = None
    _head_done_at = 0.0  # loop time when the current request's head was complete; 0 while it is not

    @classmethod
    def configured(cls, header_timeout: float, body_timeout: float) -> type[GuardedProtocol]:
        return type("GuardedProtocolWithLimits", (cls,), {"header_timeout": header_timeout,
                                                          "body_timeout": body_timeout})

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._deadline = self.loop.call_later(self.header_timeout, self._expired)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_done_at = 0.0
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.header_timeout, self._expired)

    def on_headers_complete(self) -> None:
        self._head_done_at = self.loop.time()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._head_done_at:
            left = self._head_done_at + self.body_timeout - self.loop.time()
            if left > 0:  # the head came in time: the body has its own deadline from then on
                self._deadline = self.loop.call_later(left, self._expired)
                return
            message = f"request body not received within {self.body_timeout:g} s (--body-timeout)"
        else:
            message = f"request head not received within {self.header_timeout:g} s (--header-timeout)"
        cycle: Any = self.cycle
        in_request = self._head_done_at and cycle is not None and not cycle.response_complete
        if not (in_request and cycle.response_started):
            transport.write(_timeout_response(message))
        if in_request:  # the handler reading the body gets a disconnect, and its late answer goes nowhere
            cycle.disconnected = True
            cycle.message_event.set()
        log.debug("connection closed: %s", message, extra={"client": self.client})
        transport.close()
