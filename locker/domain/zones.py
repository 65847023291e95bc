"""Keeping a cold zone cold: when the compressor runs, decided from the zone's temperature.

Pure decisions over time, no I/O: the zone loop reads the probe, asks `ZoneController.decide()`,
and switches the relay. Every rule a refrigeration technician expects is here: a setpoint with
hysteresis; a minimum off time (a compressor restarted against high pressure stalls and wears);
a maximum on time; scheduled defrost for frozen zones; a fixed duty cycle when the probe fails
(neither warm the food by stopping, nor freeze the fresh zone by running on); and, as Klipper does
for heaters, a watchdog that says when the compressor runs and the zone does not get colder.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ZoneControl:
    """How one zone is regulated (from the config)."""

    setpoint_c: float
    hysteresis_c: float = 1.0  # on above setpoint + h/2, off below setpoint - h/2
    min_off_s: float = 180.0
    max_on_s: float = 3 * 3600.0
    watchdog_s: float = 20 * 60.0  # on this long without cooling by watchdog_drop_c: a fault
    watchdog_drop_c: float = 0.5
    defrost_every_s: float | None = None  # frozen zones: e.g. every 6 hours
    defrost_s: float = 20 * 60.0
    probe_fault_on_s: float = 10 * 60.0  # duty cycle while the probe cannot be read
    probe_fault_off_s: float = 10 * 60.0


@dataclass(frozen=True)
class Decision:
    compressor_on: bool
    defrosting: bool
    not_cooling: bool  # the watchdog's verdict, latched until the zone cools again
    probe_fault: bool
    why: str


@dataclass
class ZoneController:
    control: ZoneControl
    started_at: float
    compressor_on: bool = False
    changed_at: float = field(default=-1e12)  # when the compressor last switched
    on_since_temp: float | None = None  # temperature when this run started (for the watchdog)
    watchdog_from: float = 0.0
    not_cooling: bool = False
    next_defrost: float | None = None
    defrost_until: float = 0.0
    starts: int = 0

    def __post_init__(self) -> None:
        if self.control.defrost_every_s is not None:
            self.next_defrost = self.started_at + self.control.defrost_every_s

    def decide(self, temperature: float | None, now: float) -> Decision:
        """What the compressor should do now; call at every probe reading."""
        c = self.control
        if self.next_defrost is not None and now >= self.next_defrost:
            self.defrost_until = now + c.defrost_s
            self.next_defrost = now + (c.defrost_every_s or 0.0)
        if now < self.defrost_until:
            self._switch(False, now)
            return self._decision(True, temperature is None, "defrost")
        if temperature is None:
            # no reading: a fixed duty cycle, still honouring the minimum off time
            period = c.probe_fault_on_s + c.probe_fault_off_s
            want = (now - self.started_at) % period < c.probe_fault_on_s
            self._switch(want and self._may_start(now), now)
            return self._decision(False, True, "probe fault: fixed duty cycle")
        self._watch(temperature, now)
        if self.compressor_on:
            if now - self.changed_at >= c.max_on_s:
                self._switch(False, now)
                return self._decision(False, False, "maximum on time: resting")
            if temperature < c.setpoint_c - c.hysteresis_c / 2:
                self._switch(False, now)
                return self._decision(False, False, "cold enough")
            return self._decision(False, False, "cooling")
        if temperature > c.setpoint_c + c.hysteresis_c / 2:
            if self._may_start(now):
                self._switch(True, now, temperature)
                return self._decision(False, False, "too warm: compressor on")
            return self._decision(False, False, "too warm: waiting out the minimum off time")
        return self._decision(False, False, "within hysteresis")

    def _may_start(self, now: float) -> bool:
        return self.compressor_on or now - self.changed_at >= self.control.min_off_s

    def _switch(self, on: bool, now: float, temperature: float | None = None) -> None:
        if on == self.compressor_on:
            return
        self.compressor_on = on
        self.changed_at = now
        if on:
            self.starts += 1
            self.on_since_temp = temperature
            self.watchdog_from = now

    def _watch(self, temperature: float, now: float) -> None:
        c = self.control
        if self.not_cooling and temperature <= c.setpoint_c + c.hysteresis_c / 2:
            self.not_cooling = False  # recovery seen: the latch opens
        if not self.compressor_on:
            return
        if self.on_since_temp is None:
            self.on_since_temp, self.watchdog_from = temperature, now
            return
        if self.on_since_temp - temperature >= c.watchdog_drop_c:
            # it cools: start a new window from here
            self.on_since_temp, self.watchdog_from = temperature, now
        elif now - self.watchdog_from >= c.watchdog_s:
            self.not_cooling = True

    def _decision(self, defrosting: bool, probe_fault: bool, why: str) -> Decision:
        return Decision(self.compressor_on, defrosting, self.not_cooling, probe_fault, why)
