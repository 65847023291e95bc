"""The serial line as an asyncio.Protocol: bytes in, complete frames out, through a codec.

`data_received` appends to a buffer and the codec's extractor pulls whole frames out, resyncing one
byte at a time over noise. This module never decides what a frame means, never retries and never
sleeps: matching replies to requests is hardware.bus's job. It opens the port given in the config
(a real /dev/ttyUSB0 or a pseudo-terminal /dev/pts/N) at the configured baud, 8N1, no flow control.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import cast

import serial  # type: ignore[import-untyped]
import serial_asyncio_fast

from hardware.codecs import Codec, extract_frames
from locker.domain.errors import HardwareError

log = logging.getLogger(__name__)

FrameHandler = Callable[[bytes], None]
LostHandler = Callable[[Exception | None], None]


class FrameProtocol(asyncio.Protocol):
    """Turns the byte stream into frames; counts what it had to drop as noise."""

    def __init__(
        self,
        codec: Codec,
        on_frame: FrameHandler,
        on_lost: LostHandler | None = None,
        on_bytes: Callable[[bytes], None] | None = None,
    ) -> None:
        self.codec = codec
        self.on_frame = on_frame
        self.on_lost = on_lost
        self.on_bytes = on_bytes
        self.buffer = bytearray()
        self.dropped_bytes = 0
        self.transport: asyncio.Transport | None = None
        self.connected = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.connected.set()

    def data_received(self, data: bytes) -> None:
        if self.on_bytes is not None:
            self.on_bytes(data)
        self.buffer += data
        frames, dropped = extract_frames(self.codec, self.buffer)
        self.dropped_bytes += dropped
        for frame in frames:
            self.on_frame(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.connected.clear()
        if self.on_lost is not None:
            self.on_lost(exc)

    def write(self, data: bytes) -> None:
        if self.transport is None or self.transport.is_closing():
            raise HardwareError("the serial port is closed; restart the daemon or check the cable")
        self.transport.write(data)

    def clear(self) -> None:
        """Forget a partial frame (before a new request: its bytes can only be noise now)."""
        self.buffer.clear()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_serial(
    port: str,
    baud: int,
    protocol: FrameProtocol,
) -> asyncio.Transport:
    """Open `port` at `baud` 8N1 and tie it to `protocol`; errors say which port and what to do."""
    loop = asyncio.get_running_loop()
    try:
        transport, _ = await serial_asyncio_fast.create_serial_connection(
            loop,
            lambda: protocol,
            port,
            baudrate=baud,
            bytesize=serial.EIGHTBITS,
            parity=serial.PARITY_NONE,
            stopbits=serial.STOPBITS_ONE,
            xonxoff=False,
            rtscts=False,
            exclusive=True,
        )
    except (serial.SerialException, OSError, ValueError) as exc:
        raise HardwareError(
            f"cannot open the lock-board port {port} at {baud} baud: {exc}; check bus.port in"
            " the config, that the adapter is plugged in and that no other program holds it"
        ) from exc
    await protocol.connected.wait()
    return cast(asyncio.Transport, transport)
