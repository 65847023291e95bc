"""Telling systemd how the daemon is: READY once the locker accepts codes, WATCHDOG while its
loops turn, STOPPING on the way out (sd_notify(3), written out: a datagram to $NOTIFY_SOCKET).

The watchdog ping is not a timer that always fires: it is sent only while the locker's
housekeeping loop has turned recently, so a wedged event loop or a dead housekeeping task stops
the pings and systemd restarts the daemon (WatchdogSec= in deploy/systemd/locker.service).
Without $NOTIFY_SOCKET (a terminal, the tests) every call is a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from locker.domain.daemon import Locker

log = logging.getLogger("locker.systemd")


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        # "@name" is Linux's abstract namespace: a leading NUL byte on the wire
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_s = int(usec) / 1e6 if usec.isdigit() and mine else None

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def notify(self, state: str) -> bool:
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(self.address)
                sock.sendall(state.encode())
        except OSError as exc:
            log.warning("cannot notify systemd (%s): %s", state.split("=")[0], exc)
            return False
        return True

    async def watchdog(self, locker: Locker) -> None:
        """Ping at half the watchdog interval, only while the locker is alive."""
        if self.watchdog_s is None:
            return
        interval = self.watchdog_s / 2
        while True:
            if locker.alive(max_age_s=interval + 5.0):
                self.notify("WATCHDOG=1")
            else:
                log.error("housekeeping has not run for a while: not pinging the watchdog")
            await asyncio.sleep(interval)
