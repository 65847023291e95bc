"""What the customer's screen reads: its settings with the drawing of the bank, every door's
state live (server-sent events), and each of its messages spoken (espeak-ng, offline).

Never anything about orders or codes: a door's state is what anyone standing there sees. Speech
is made only from the screen's own message catalogue (kiosk-text.json) filled with values this
module checks (a compartment of the config, a number of seconds), never from text a client sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from api import returns
from api.common import LOCKER, BadRequest, bank
from api.live import stream
from api.ops import LIVE
from locker.domain.codes import CODE_DIGITS
from locker.domain.config import LockerConfig

STATIC = Path(__file__).parent / "static"
TEXT: dict[str, dict[str, Any]] = json.loads((STATIC / "kiosk-text.json").read_text("utf-8"))
VOICES = {"en": "en-gb", "fr": "fr-fr"}
MAX_STREAMS = 8  # screens watching doors at once; more is not a kiosk
MAX_PARTS = 6
MAX_DOORS = 8  # an order's doors, read out
KEPT_SOUNDS = 200  # the speech folder's bound, the oldest files going first (50 MB at worst)
PEAK = re.compile(r"-?[0-9]{1,2}(\.[0-9]{1,2})?")
STREAMS = web.AppKey("kiosk_streams", set)
SPEAKING = web.AppKey("speaking", asyncio.Lock)


async def kiosk_info(request: web.Request) -> web.Response:
    locker = request.app[LOCKER]
    return web.json_response({
        "locker": locker.config.locker_id, "name": locker.config.name,
        "support_phone": locker.config.support_phone, "digits": CODE_DIGITS,
        "idle_s": locker.config.http.screen_idle_s, "bank": bank(locker.config),
        "speech": shutil.which("espeak-ng") is not None,
        # what customers may hand back here (the offer itself comes with a pickup)
        "returns": returns.kinds_json() if locker.config.returns.enabled else [],
        # the screens say when they asked, on this clock, and give up after request_timeout_s
        # (past the locker's own deadline to act, so a request they gave up on did nothing)
        "now": time.time(), "request_timeout_s": locker.config.http.stale_request_s + 5.0,
    })


# what a door event says of its door, whatever has happened since: a door opened and closed
# again before the stream read the store is still seen open, then closed
EVENT_DOOR = {"door.opened": "open", "door.forced": "forced", "door.closed": "locked",
              "door.jammed": "jammed"}


def door_states(request: web.Request, event: dict[str, Any] | None = None) -> bytes:
    rows = request.app[LOCKER].store.read().all("SELECT id, door FROM compartments")
    states = {r["id"]: r["door"] for r in rows}
    if event is not None and event["kind"] in EVENT_DOOR and event.get("compartment_id"):
        states[event["compartment_id"]] = EVENT_DOOR[event["kind"]]
    return f"data: {json.dumps(states)}\n\n".encode()


async def door_stream(request: web.Request) -> web.StreamResponse:
    """Every compartment's door state, once on connecting and again after each committed door
    event (the whole bank each time: a screen that missed a line is right at the next one)."""
    streams = request.app[STREAMS]
    if len(streams) >= MAX_STREAMS:
        raise web.HTTPServiceUnavailable(
            text='{"error": "busy", "message": "too many screens watching the doors"}',
            content_type="application/json")

    def doors_of(line: str) -> bytes | None:
        event = json.loads(line)
        return door_states(request, event) if event["kind"].startswith("door.") else None

    return await stream(request, request.app[LIVE], lambda: door_states(request), doors_of,
                        streams)


def speech_text(config: LockerConfig, lang: str, parts: list[str], doors: list[str],
                failed: list[str], seconds: int, peak: str = "", minutes: str = "") -> str:
    """The words the screen shows for `parts` (catalogue keys, "refusals.used" for one of a
    group; "doors" reads `doors`, {c} in a message is `failed`). A message that needs a value
    the screen alone knows (an order reference, a temperature) is shown, never spoken."""
    text = TEXT[lang]
    values = {"phone": config.support_phone, "n": str(CODE_DIGITS), "s": str(seconds),
              "c": ", ".join(failed), "peak": peak, "m": minutes}
    said = []
    for part in parts:
        if part == "doors":
            for cid in doors:
                c = config.compartment(cid)
                said.append(text["door"].format(id=c.id, zone=c.zone.spec.label(lang),
                                                column=c.column, level=c.level) + ".")
            continue
        group, _, name = part.rpartition(".")
        table = text.get(group) if group else text
        words = table.get(name) if isinstance(table, dict) and group in ("", "refusals") else None
        if part in ("door", "door_is") or not isinstance(words, str):
            raise BadRequest("say", f"no message {part!r}")
        try:
            said.append(words.format_map(values))
        except KeyError:
            raise BadRequest("say", f"message {part!r} is shown, not spoken") from None
    return " ".join(said)


async def speech(request: web.Request) -> web.FileResponse:
    """GET /api/speech?lang=fr&say=open,doors,close&doors=F02,Z01&failed=&s=5: a WAV file, made by
    espeak-ng the first time and kept in data_dir/speech."""
    locker = request.app[LOCKER]
    query = request.query
    lang = query.get("lang", "en")
    if lang not in TEXT:
        raise BadRequest("lang", f"lang must be one of {', '.join(TEXT)}")
    parts = [p for p in query.get("say", "").split(",") if p]
    doors = [d for d in query.get("doors", "").split(",") if d]
    failed = [d for d in query.get("failed", "").split(",") if d]
    if not parts or len(parts) > MAX_PARTS:
        raise BadRequest("say", f"say: 1 to {MAX_PARTS} message names")
    known = {c.id for c in locker.config.compartments}
    for key, ids in (("doors", doors), ("failed", failed)):
        if not set(ids) <= known or len(ids) > MAX_DOORS:
            raise BadRequest(key, f"{key}: compartments of this locker")
    seconds = query.get("s", "0")
    if not seconds.isdigit() or int(seconds) > 999:
        raise BadRequest("s", "s: whole seconds, 0 to 999")
    # a kept-back bag's figures: numbers only, so nothing but numbers is ever spoken from them
    peak, minutes = query.get("peak", ""), query.get("m", "")
    if peak and not PEAK.fullmatch(peak):
        raise BadRequest("peak", "peak: a temperature, -99.9 to 99.9")
    if minutes and not (minutes.isdigit() and int(minutes) <= 99999):
        raise BadRequest("m", "m: whole minutes, 0 to 99999")
    text = speech_text(locker.config, lang, parts, doors, failed, int(seconds), peak, minutes)
    folder = locker.config.data_dir / "speech"
    path = folder / f"{lang}-{hashlib.sha256(text.encode()).hexdigest()[:32]}.wav"
    if not path.exists():
        espeak = shutil.which("espeak-ng")
        if espeak is None:
            raise web.HTTPServiceUnavailable(
                text='{"error": "no_speech", "message": "espeak-ng is not installed:'
                     ' apt-get install espeak-ng"}', content_type="application/json")
        async with request.app[SPEAKING]:  # one voice at a time: the Pi has other work
            folder.mkdir(mode=0o700, exist_ok=True)
            partial = path.with_suffix(".part")
            process = await asyncio.create_subprocess_exec(
                espeak, "-v", VOICES[lang], "-s", "150", "-w", str(partial), "--stdin",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL)
            await process.communicate(text.encode())
            if process.returncode != 0:
                raise web.HTTPInternalServerError(
                    text='{"error": "speech", "message": "espeak-ng failed"}',
                    content_type="application/json")
            partial.replace(path)
            sounds = sorted(folder.glob("*.wav"), key=lambda p: p.stat().st_mtime)
            for old in sounds[:-KEPT_SOUNDS]:
                old.unlink(missing_ok=True)
    return web.FileResponse(path, headers={"Content-Type": "audio/wav",
                                           "Cache-Control": "max-age=86400"})


def add_routes(app: web.Application) -> None:
    app[STREAMS] = set()
    app[SPEAKING] = asyncio.Lock()
    app.router.add_get("/api/kiosk", kiosk_info)
    app.router.add_get("/api/kiosk/doors", door_stream)
    app.router.add_get("/api/speech", speech)
