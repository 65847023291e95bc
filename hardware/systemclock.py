"""Is the Pi's clock synchronised? The kernel knows: adjtimex(2) with no mode set reads the NTP
state that systemd-timesyncd, chrony or ntpd keep, and `STA_UNSYNC` is set until one of them has
disciplined the clock (and again whenever someone sets the time by hand).

A Raspberry Pi has no real-time clock: it boots on the last time saved at shutdown, or on 1970,
until NTP answers. Implements locker.domain.ports.ClockStatus; never raises.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

STA_UNSYNC = 0x0040
TIME_ERROR = 5  # adjtimex's answer while the clock is not synchronised


class _Timex(ctypes.Structure):
    """struct timex from <sys/timex.h> (Linux), as far as we read it; padded to its full size."""

    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long), ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("padding", ctypes.c_int * 11),
    ]


class KernelClockStatus:
    """The kernel's NTP state through adjtimex(2); None where there is no such call."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("c")
        self._libc = ctypes.CDLL(name, use_errno=True) if name else None
        self._adjtimex = getattr(self._libc, "adjtimex", None)

    def synchronised(self) -> bool | None:
        if self._adjtimex is None:
            return None
        timex = _Timex()  # modes = 0: read only
        state = self._adjtimex(ctypes.byref(timex))
        if state < 0:
            log.debug("adjtimex failed: errno %d", ctypes.get_errno())
            return None
        return state != TIME_ERROR and not timex.status & STA_UNSYNC
