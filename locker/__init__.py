"""The locker's domain and daemon: compartments, orders, pickup codes, the store, the clock.

Nothing in this package imports an I/O library (aiohttp, pyserial, gpiozero): hardware/ and api/
plug into it through the small protocols in locker.domain.ports.
"""

__version__ = "0.1.0"
