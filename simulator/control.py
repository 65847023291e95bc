"""Runs the simulated boards as their own process, with a small HTTP control API, and a client.

`python -m simulator.boards --config FILE [--link PATH] [--control-port N] [--auto-close S]`
prints `PORT /dev/pts/N` as its first line and `CONTROL http://127.0.0.1:N` as its second, then
serves until SIGTERM or SIGINT. A separate process, so the lock hardware keeps its state when the
daemon is killed, as a real locker's would. The API listens on 127.0.0.1 only:

    GET  /state                                  every compartment: latch, door, jammed, fault
    GET  /history[?doors_since=N&frames_since=M] door changes and line frames from those
                                                 sequence numbers; answers the next ones too
    POST /compartments/{id}/{action}             open close jam unjam force fault unfault
                                                 put take (goods in / out, through an open
                                                 door; 409 while it is shut)
    POST /boards/{address}/{silent|answer}
    POST /noise      {"bytes": n}                n random bytes toward the daemon
    POST /corrupt    {"replies": n}              spoil the next n replies
    POST /lose-unlock-replies {"unlocks": n, "replies": m}
                                                 the next n unlocks pulse, and the board's next
                                                 m replies after each are lost
    POST /auto-close {"seconds": s | null}       the person closes opened doors after s; on
                                                 item_sensor boards they put goods into an
                                                 empty compartment, or take them out, first

`ControlClient` calls it from tests and the demo; `spawn()` starts the process and reads its
port. This module must NEVER import anything from hardware/.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

from locker.domain.config import load_config
from locker.domain.errors import ConfigError
from simulator.boards import SimulatedBoards
from simulator.doors import DoorRefused

BOARDS_KEY = web.AppKey("boards", SimulatedBoards)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _problem(status: int, detail: str) -> web.Response:
    return web.json_response({"error": detail}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(
            text='{"error": "body is not JSON"}', content_type="application/json"
        ) from None
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text='{"error": "body must be a JSON object"}', content_type="application/json"
        )
    return data


def _count(data: dict[str, Any], key: str, default: int, most: int) -> int:
    value = data.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= most:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": f"{key} must be an integer from 0 to {most}"}),
            content_type="application/json",
        )
    return value


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(request.app[BOARDS_KEY].state())


async def get_history(request: web.Request) -> web.Response:
    boards = request.app[BOARDS_KEY]
    try:
        doors_since = int(request.query.get("doors_since", "0"))
        frames_since = int(request.query.get("frames_since", "0"))
    except ValueError:
        return _problem(400, "doors_since and frames_since must be integers")
    boards.doors.state()  # settle latch pulses that are due
    return web.json_response(
        {
            "doors": [c.as_dict() for c in boards.doors.history[max(0, doors_since) :]],
            "frames": [f.as_dict() for f in boards.frames_since(frames_since)],
            "doors_next": len(boards.doors.history),
            "frames_next": boards.frames_total,
        }
    )


async def post_compartment(request: web.Request) -> web.Response:
    boards = request.app[BOARDS_KEY]
    lock_id, action = request.match_info["id"], request.match_info["action"]
    actions: dict[str, Callable[[str], None]] = {
        "open": boards.open,
        "close": boards.close,
        "jam": boards.jam,
        "unjam": boards.unjam,
        "force": boards.force,
        "fault": lambda c: boards.lock_fault(c, True),
        "unfault": lambda c: boards.lock_fault(c, False),
        "put": boards.put,
        "take": boards.take,
    }
    if action not in actions:
        return _problem(404, f"no action {action!r}; use one of {', '.join(actions)}")
    if lock_id not in boards.doors.locks:
        return _problem(404, f"no compartment {lock_id!r}")
    try:
        actions[action](lock_id)
    except DoorRefused as exc:
        return _problem(409, str(exc))
    return web.json_response(boards.doors.lock(lock_id).as_dict())


async def post_board(request: web.Request) -> web.Response:
    boards = request.app[BOARDS_KEY]
    action = request.match_info["action"]
    try:
        address = int(request.match_info["address"])
        if action == "silent":
            boards.set_silent(address, True)
        elif action == "answer":
            boards.answer(address)
        else:
            return _problem(404, f"no action {action!r}; use silent or answer")
    except (ValueError, KeyError) as exc:
        return _problem(404, str(exc).strip("'\""))
    return web.json_response({"address": address, "silent": boards.boards[address].silent})


async def post_noise(request: web.Request) -> web.Response:
    count = _count(await _body(request), "bytes", 8, 4096)
    sent = request.app[BOARDS_KEY].inject_noise(count)
    return web.json_response({"sent": sent.hex(" ")})


async def post_corrupt(request: web.Request) -> web.Response:
    count = _count(await _body(request), "replies", 1, 1000)
    request.app[BOARDS_KEY].corrupt_next_replies(count)
    return web.json_response({"replies": count})


async def post_lose_unlock_replies(request: web.Request) -> web.Response:
    body = await _body(request)
    count, replies = _count(body, "unlocks", 1, 1000), _count(body, "replies", 1, 100)
    request.app[BOARDS_KEY].lose_unlock_replies(count, replies)
    return web.json_response({"unlocks": count, "replies": replies})


async def post_auto_close(request: web.Request) -> web.Response:
    seconds = (await _body(request)).get("seconds")
    if seconds is not None and (
        not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0
    ):
        return _problem(400, "seconds must be a number >= 0 or null")
    request.app[BOARDS_KEY].person.auto_close_s = None if seconds is None else float(seconds)
    return web.json_response({"seconds": seconds})


def create_app(boards: SimulatedBoards) -> web.Application:
    app = web.Application()
    app[BOARDS_KEY] = boards
    app.router.add_get("/state", get_state)
    app.router.add_get("/history", get_history)
    app.router.add_post("/compartments/{id}/{action}", post_compartment)
    app.router.add_post("/boards/{address}/{action}", post_board)
    app.router.add_post("/noise", post_noise)
    app.router.add_post("/corrupt", post_corrupt)
    app.router.add_post("/lose-unlock-replies", post_lose_unlock_replies)
    app.router.add_post("/auto-close", post_auto_close)
    return app


# ---- the process ---------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.boards",
        description="Simulated lock boards on a pseudo-terminal, with an HTTP control API.",
    )
    parser.add_argument("--config", required=True, help="the locker's TOML config")
    parser.add_argument("--link", help="also make this symlink point at the pty")
    parser.add_argument(
        "--control-port",
        type=int,
        default=0,
        help="control API port on 127.0.0.1 (0: any free port)",
    )
    parser.add_argument(
        "--auto-close",
        type=float,
        default=None,
        metavar="S",
        help="close every opened door after S seconds (on a board with item_sensor, putting"
        " goods into an empty compartment or taking them out of a full one first)",
    )
    parser.add_argument(
        "--no-pace",
        action="store_true",
        help="answer at once instead of after the line's byte times",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    config = load_config(args.config)
    boards = SimulatedBoards(
        config, auto_close_s=args.auto_close, pace=not args.no_pace, link=args.link
    )
    await boards.start()
    runner = web.AppRunner(create_app(boards), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.control_port)
    await site.start()
    host, port = runner.addresses[0][:2]
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before we say we are up: a stop may follow
        loop.add_signal_handler(sig, stopping.set)
    print(f"PORT {boards.port}", flush=True)
    print(f"CONTROL http://{host}:{port}", flush=True)
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()
        await boards.stop()


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    try:
        asyncio.run(serve(args))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


# ---- the client ----------------------------------------------------------------------------


class ControlClient:
    """Calls a running simulator's control API (tests, the demo, a technician's script)."""

    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._session: ClientSession | None = None
        self._timeout = ClientTimeout(total=timeout_s)

    async def __aenter__(self) -> ControlClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close_session()

    async def close_session(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if self._session is None:
            self._session = ClientSession(timeout=self._timeout)
        async with self._session.request(method, self.base_url + path, json=body) as response:
            data = await response.json()
            if response.status >= 400:
                raise ControlError(response.status, data.get("error", str(data)))
            return data

    async def state(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("GET", "/state")
        return result

    async def compartment(self, lock_id: str) -> dict[str, Any]:
        result: dict[str, Any] = (await self.state())["compartments"][lock_id]
        return result

    async def history(self, doors_since: int = 0, frames_since: int = 0) -> dict[str, Any]:
        """{"doors": [Change...], "frames": [FrameRecord...], "doors_next", "frames_next"}."""
        result: dict[str, Any] = await self._call(
            "GET", f"/history?doors_since={doors_since}&frames_since={frames_since}"
        )
        return result

    async def _door(self, lock_id: str, action: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._call("POST", f"/compartments/{lock_id}/{action}")
        return result

    async def open(self, lock_id: str) -> dict[str, Any]:
        return await self._door(lock_id, "open")

    async def close(self, lock_id: str) -> dict[str, Any]:
        return await self._door(lock_id, "close")

    async def jam(self, lock_id: str) -> dict[str, Any]:
        return await self._door(lock_id, "jam")

    async def unjam(self, lock_id: str) -> dict[str, Any]:
        return await self._door(lock_id, "unjam")

    async def force(self, lock_id: str) -> dict[str, Any]:
        return await self._door(lock_id, "force")

    async def put(self, lock_id: str) -> dict[str, Any]:
        """Goods in, through the open door."""
        return await self._door(lock_id, "put")

    async def take(self, lock_id: str) -> dict[str, Any]:
        """Goods out, through the open door."""
        return await self._door(lock_id, "take")

    async def lock_fault(self, lock_id: str, fault: bool = True) -> dict[str, Any]:
        return await self._door(lock_id, "fault" if fault else "unfault")

    async def silent(self, address: int) -> None:
        await self._call("POST", f"/boards/{address}/silent")

    async def answer(self, address: int) -> None:
        await self._call("POST", f"/boards/{address}/answer")

    async def noise(self, count: int) -> bytes:
        return bytes.fromhex((await self._call("POST", "/noise", {"bytes": count}))["sent"])

    async def corrupt(self, replies: int = 1) -> None:
        await self._call("POST", "/corrupt", {"replies": replies})

    async def lose_unlock_replies(self, unlocks: int = 1, replies: int = 1) -> None:
        await self._call("POST", "/lose-unlock-replies", {"unlocks": unlocks, "replies": replies})

    async def auto_close(self, seconds: float | None) -> None:
        await self._call("POST", "/auto-close", {"seconds": seconds})


class ControlError(Exception):
    """The control API refused a call; `status` is its HTTP status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


@dataclass
class SimulatorProcess:
    """A running `python -m simulator.boards` child: its pty, its API, and how to stop it."""

    process: asyncio.subprocess.Process
    port: str
    control_url: str
    client: ControlClient

    async def stop(self, timeout_s: float = 5.0) -> int:
        await self.client.close_session()
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout_s)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        return self.process.returncode if self.process.returncode is not None else -1


async def spawn(
    config: str | Path,
    *,
    link: str | None = None,
    control_port: int = 0,
    auto_close_s: float | None = None,
    pace: bool = True,
    start_timeout_s: float = 10.0,
) -> SimulatorProcess:
    """Start the boards in a child process and wait for its PORT and CONTROL lines."""
    root = Path(__file__).resolve().parent.parent
    argv = [
        sys.executable,
        "-m",
        "simulator.boards",
        "--config",
        str(config),
        "--control-port",
        str(control_port),
    ]
    if link:
        argv += ["--link", link]
    if auto_close_s is not None:
        argv += ["--auto-close", str(auto_close_s)]
    if not pace:
        argv.append("--no-pace")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, env=env, cwd=root
    )
    assert process.stdout is not None
    lines: dict[str, str] = {}
    try:
        async with asyncio.timeout(start_timeout_s):
            while len(lines) < 2:
                line = (await process.stdout.readline()).decode().strip()
                if not line:
                    raise RuntimeError(
                        f"simulator exited before it printed its port (code {process.returncode})"
                    )
                key, _, value = line.partition(" ")
                lines[key] = value
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    url = lines["CONTROL"]
    return SimulatorProcess(process, lines["PORT"], url, ControlClient(url))
