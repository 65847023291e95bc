"""What the customer's screen reads besides the pickup: the bank's layout, and every one of its
messages spoken (espeak-ng) in both languages, from its own catalogue only."""

from __future__ import annotations

import io
import re
import shutil
import wave
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from api.app import create_app
from api.kiosk import TEXT
from locker.domain.clock import SimClock
from locker.domain.config import LockerConfig
from locker.domain.daemon import Locker
from tests.support.doubles import FakeDriver


@pytest.fixture
async def http(config: LockerConfig) -> AsyncIterator[TestClient]:
    locker = Locker(config, FakeDriver([c.id for c in config.compartments]), SimClock())
    async with TestClient(TestServer(create_app(locker))) as client:
        yield client


async def test_the_kiosk_learns_the_bank_as_built(http: TestClient, config: LockerConfig) -> None:
    bank = (await (await http.get("/api/kiosk")).json())["bank"]
    assert bank["columns"] == max(c.column for c in config.compartments)
    assert bank["levels"] == max(c.level for c in config.compartments)
    first = config.compartments[0]
    assert {"id": first.id, "zone": first.zone.value, "column": first.column,
            "level": first.level} in bank["compartments"]


async def test_every_message_is_spoken_in_both_languages(http: TestClient,
                                                         config: LockerConfig) -> None:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: install Debian's espeak-ng (./dev test does)")
    door = config.compartments[0].id
    assert set(TEXT) == {"en", "fr"} and TEXT["en"].keys() == TEXT["fr"].keys()
    for lang, messages in TEXT.items():
        names = {k: v for k, v in messages.items()
                 if isinstance(v, str) and k not in ("door", "door_is")}
        names |= {f"refusals.{k}": v for k, v in messages["refusals"].items()}
        for name in [*names, "doors"]:
            response = await http.get("/api/speech", params={
                "lang": lang, "say": name, "doors": door, "failed": door, "s": "12",
                "peak": "7.5", "m": "25"})
            # a message with a value only the screen knows (an order, a temperature) is shown
            spoken = set(re.findall(r"\{(\w+)\}", names.get(name, ""))) <= {
                "phone", "n", "s", "c", "peak", "m"}
            if not spoken:
                assert response.status == 400, (lang, name)
                continue
            assert response.status == 200, (lang, name, await response.text())
            assert response.content_type == "audio/wav"
            with wave.open(io.BytesIO(await response.read())) as audio:
                seconds = audio.getnframes() / audio.getframerate()
            assert seconds > 0.3, (lang, name, seconds)


@pytest.mark.parametrize("params", [
    {"lang": "de", "say": "prompt"}, {"lang": "en", "say": "nothing"},
    {"lang": "en", "say": "zones"}, {"lang": "en", "say": "door"}, {"lang": "en", "say": ""},
    {"lang": "en", "say": "doors", "doors": "NOPE"}, {"lang": "en", "say": "slow", "s": "-1"},
    {"lang": "en", "say": "refusals"}, {"lang": "en", "say": "zones.fresh"},
    {"lang": "en", "say": "withheld", "peak": "hot"}, {"lang": "en", "say": "withheld", "m": "-3"},
    {"lang": "en", "say": "reference"},
    {"lang": "en", "say": ",".join(["prompt"] * 7)},
])
async def test_speech_is_made_only_of_the_screens_messages(http: TestClient,
                                                           params: dict[str, str]) -> None:
    response = await http.get("/api/speech", params=params)
    assert response.status == 400
    assert (await response.json())["error"] == "bad_request"


async def test_the_spoken_messages_kept_are_bounded(http: TestClient, config: LockerConfig,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("api.kiosk.KEPT_SOUNDS", 3)
    for seconds in range(5):  # each a different sentence, so a different file
        response = await http.get("/api/speech", params={"say": "refusals.throttled",
                                                          "s": str(seconds)})
        assert response.status == 200
    assert len(list((config.data_dir / "speech").glob("*.wav"))) == 3
