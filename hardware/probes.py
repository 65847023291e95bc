"""Zone temperature probes: a DS18B20 on 1-Wire, read from the Linux w1-therm sysfs file.

The kernel's w1-therm driver exposes each probe as `/sys/bus/w1/devices/28-xxxxxxxxxxxx/w1_slave`,
two lines of text: the 9-byte scratchpad with the kernel's CRC verdict, then the scratchpad again
with the temperature in millidegrees Celsius::

    72 01 4b 46 7f ff 0e 10 57 : crc=57 YES
    72 01 4b 46 7f ff 0e 10 57 t=23125

`DS18B20Probe.read_celsius()` reads that file in a worker thread (a read triggers a conversion and
takes ~750 ms on a real Pi) and returns °C, or raises `ProbeFault` saying which probe, what was
wrong and what to check.

What it must never do:
- return a temperature it has not fully checked. A cold-chain record and a compressor decision are
  only as good as this number, so every way the file can lie is a `ProbeFault`: file missing
  (probe unplugged), the kernel's CRC verdict not YES, our own Dallas/Maxim CRC-8 over the
  scratchpad not matching (we do not trust the verdict alone), a malformed file, an all-zero
  scratchpad (data line held low: its CRC is 0 and so "valid"), 85 °C (the power-on reset value,
  never real in a fridge), -127 °C or anything outside the sensor's -55..+125 °C, or a jump faster
  than `max_rate_c_per_s` since the last good reading (no cold zone can change that fast);
- let a bad reading replace the last good one (the rate limit compares with the last good reading);
- raise anything but `ProbeFault` because of what is in the file;
- block the event loop: the file is read with `asyncio.to_thread`;
- decide anything about the compressor or the cold chain: that is locker/domain/zones.py's job.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from pathlib import Path

from locker.domain.errors import HardwareError

POWER_ON_RESET_MILLI_C = 85_000  # what the scratchpad holds before the first conversion
DISCONNECTED_MILLI_C = -127_000  # what several drivers report for a probe that does not answer
MIN_MILLI_C = -55_000  # the DS18B20's measuring range (datasheet)
MAX_MILLI_C = 125_000
LSB_C = 1 / 16  # the 12-bit resolution: a reading may flicker by one step at any rate

_HEX9 = r"((?:[0-9a-fA-F]{2} ){9})"
_CRC_LINE = re.compile(_HEX9 + r": crc=([0-9a-fA-F]{2}) (\S+)", re.ASCII)
_TEMP_LINE = re.compile(_HEX9 + r"t=(-?[0-9]{1,9})", re.ASCII)

_CHECK_WIRING = (
    "check the probe's three wires and the 4.7 kOhm pull-up between data and 3.3 V, and keep the "
    "cable away from the compressor's power lines"
)


class ProbeFault(HardwareError):
    """A temperature probe could not be read, or gave a reading that cannot be true."""


def dallas_crc8(data: bytes) -> int:
    """Dallas/Maxim 1-Wire CRC-8: polynomial x^8+x^5+x^4+1 (0x31, reflected 0x8C), init 0.

    Over a scratchpad's first 8 bytes it equals the 9th; over all 9 bytes it is 0.
    """
    crc = 0
    for byte in data:
        for _ in range(8):
            mix = (crc ^ byte) & 1
            crc >>= 1
            if mix:
                crc ^= 0x8C
            byte >>= 1
    return crc


class DS18B20Probe:
    """One DS18B20 probe read through its w1_slave sysfs file."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_rate_c_per_s: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(max_rate_c_per_s) and max_rate_c_per_s > 0):
            raise ValueError(f"max_rate_c_per_s must be a positive number, not {max_rate_c_per_s}")
        self.path = Path(path)
        self.max_rate_c_per_s = max_rate_c_per_s
        self._monotonic = monotonic
        self._last_good: tuple[float, float] | None = None  # (°C, monotonic time)

    @property
    def last_good_celsius(self) -> float | None:
        """The last reading that passed every check, or None before the first one."""
        return None if self._last_good is None else self._last_good[0]

    async def read_celsius(self) -> float:
        """Read the probe now; °C, or `ProbeFault` saying what was wrong and what to check."""
        try:
            data = await asyncio.to_thread(self.path.read_bytes)
        except FileNotFoundError:
            raise self._fault(
                "the w1_slave file does not exist: the probe is unplugged or not detected",
                f"{_CHECK_WIRING}; check that the w1-gpio overlay and w1-therm module are loaded "
                f"(ls {self.path.parent.parent})",
            ) from None
        except OSError as exc:
            raise self._fault(
                f"the w1_slave file cannot be read ({exc.strerror or exc})",
                f"{_CHECK_WIRING}; check the daemon may read sysfs",
            ) from None
        celsius = self._parse(data) / 1000
        now = self._monotonic()
        if self._last_good is not None:
            last, at = self._last_good
            allowed = self.max_rate_c_per_s * max(0.0, now - at) + LSB_C
            if abs(celsius - last) > allowed:
                raise self._fault(
                    f"it read {celsius:.3f} °C, {abs(celsius - last):.3f} °C away from the last "
                    f"good reading ({last:.3f} °C, {now - at:.1f} s ago), faster than "
                    f"{self.max_rate_c_per_s} °C/s, which no cold zone can do; the reading is "
                    "ignored",
                    f"{_CHECK_WIRING}; if the probe was moved, the next readings will be accepted "
                    "as the allowance grows with time",
                )
        self._last_good = (celsius, now)
        return celsius

    def _parse(self, data: bytes) -> int:
        """The file's temperature in millidegrees, after every check that needs no history."""
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise self._malformed("it is not ASCII text") from None
        lines = text.strip().splitlines()
        if len(lines) != 2:
            raise self._malformed(f"it has {len(lines)} lines instead of 2")
        crc_line = _CRC_LINE.fullmatch(lines[0].strip())
        temp_line = _TEMP_LINE.fullmatch(lines[1].strip())
        if crc_line is None:
            raise self._malformed(f"its first line is not '<9 bytes> : crc=<xx> YES': {lines[0]!r}")
        if temp_line is None:
            raise self._malformed(
                f"its second line is not '<9 bytes> t=<millidegrees>': {lines[1]!r}"
            )
        if crc_line.group(3) != "YES":
            raise self._fault(
                f"the kernel's CRC check failed (crc={crc_line.group(2)} {crc_line.group(3)}): the "
                "scratchpad was garbled on the wire",
                _CHECK_WIRING,
            )
        scratchpad = bytes.fromhex(crc_line.group(1))
        if bytes.fromhex(temp_line.group(1)) != scratchpad:
            raise self._malformed("its two lines show different scratchpads")
        if int(crc_line.group(2), 16) != scratchpad[8]:
            raise self._malformed(
                f"crc={crc_line.group(2)} is not the scratchpad's 9th byte {scratchpad[8]:02x}"
            )
        expected = dallas_crc8(scratchpad[:8])
        if expected != scratchpad[8]:
            raise self._fault(
                f"the scratchpad's CRC is {scratchpad[8]:02x} but its bytes give {expected:02x} "
                "(Dallas/Maxim CRC-8), although the kernel said YES",
                _CHECK_WIRING,
            )
        if not any(scratchpad):
            raise self._fault(
                "the scratchpad is all zeros (its CRC is 0 and so looks valid): the data line is "
                "held low",
                f"{_CHECK_WIRING}; look for a short between data and ground",
            )
        milli_c = int(temp_line.group(2))
        if milli_c == POWER_ON_RESET_MILLI_C:
            raise self._fault(
                "it read 85.000 °C, the DS18B20's power-on reset value: the probe browned out or "
                "restarted before converting",
                f"{_CHECK_WIRING}; in parasite-power mode, wire VDD to 3.3 V instead",
            )
        if milli_c == DISCONNECTED_MILLI_C:
            raise self._fault(
                "it read -127.000 °C, the value for a probe that does not answer", _CHECK_WIRING
            )
        if not MIN_MILLI_C <= milli_c <= MAX_MILLI_C:
            raise self._fault(
                f"it read {milli_c / 1000:.3f} °C, outside the DS18B20's range "
                f"({MIN_MILLI_C // 1000}..+{MAX_MILLI_C // 1000} °C)",
                f"{_CHECK_WIRING}; check that {self.path.parent.name} is a DS18B20 (family 28)",
            )
        return milli_c

    def _fault(self, what: str, check: str) -> ProbeFault:
        return ProbeFault(f"DS18B20 probe {self.path}: {what}; {check}.")

    def _malformed(self, what: str) -> ProbeFault:
        return self._fault(
            f"the w1_slave file is not in the w1-therm format ({what})",
            f"check that {self.path} is a DS18B20's w1_slave file and that the kernel's w1-therm "
            "driver is loaded",
        )
