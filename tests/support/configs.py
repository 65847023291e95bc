"""Edits of the small test locker's config that several tests make."""

from __future__ import annotations


def with_item_sensors(text: str) -> str:
    """Both boards report what is inside (Kerong's infrared bits)."""
    for address in (0, 1):
        text = text.replace(f"[[bus.boards]]\naddress = {address}\n",
                            f"[[bus.boards]]\naddress = {address}\nitem_sensor = true\n")
    assert text.count("item_sensor = true") == 2
    return text
