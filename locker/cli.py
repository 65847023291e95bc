"""The `locker` command: run the daemon, add orders, read events, check a config, run the demo.

This module is the composition root: it is the one place in locker/ that reaches hardware/, api/
and simulator/, and it imports them inside the commands that need them, so `import locker` alone
never loads an I/O library.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import secrets
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyotp

from locker import __version__
from locker.domain import attempts, certificates, logs
from locker.domain.backup import restore, take
from locker.domain.certificate_html import render_html
from locker.domain.codes import (
    PickupCodes,
    box_public_key,
    create_keys,
    create_private_file,
    grouped,
    load_box_key,
)
from locker.domain.coldchain import export_csv
from locker.domain.config import LockerConfig, load_config
from locker.domain.daemon import sync_compartments
from locker.domain.datadir import (
    DataDirLock,
    check_before_open,
    check_identity,
    check_private_dir,
    make_private_dir,
    make_private_file,
)
from locker.domain.errors import LockerError
from locker.domain.haccp import (
    create_record_key,
    load_public_pem,
    load_record_key,
    public_pem,
    verify,
)
from locker.domain.keys import rotate_keys, settle_key_files
from locker.domain.orders import add_order_to_load, add_ready_order, parse_bag
from locker.domain.staff import create_secret, load_secret
from locker.domain.store import Store
from locker.domain.throttle import SCOPES

if TYPE_CHECKING:
    from locker.domain.logs import Redact
    from locker.domain.ports import LockDriver

DEFAULT_CONFIG = "examples/locker.toml"


async def serve(config: LockerConfig, driver: LockDriver, *, port: int | None = None,
                redact: Redact | None = None) -> int:
    """Run the locker and its HTTP app until SIGINT or SIGTERM; the exit code is 75 when the
    update agent stopped it to start a new version (api/updater.py), else 0.

    systemd hears READY=1 once the store is open and every door reconciled (the app's startup
    starts the locker), WATCHDOG=1 while the housekeeping loop turns, and STOPPING=1 on a
    signal; the transaction in flight finishes, the app stops, and the store closes cleanly.
    """
    from api.app import create_app
    from api.listener import make_runner, start_site
    from api.systemd import Notifier
    from api.updater import exit_code
    from hardware import factory
    from hardware.systemclock import KernelClockStatus
    from locker.domain.daemon import Locker

    locker = Locker(config, driver, zones=factory.zones(config),
                    clock_status=KernelClockStatus())
    if redact is not None:
        redact.add(known_secrets(config))
    app = create_app(locker)
    runner = make_runner(app, config.http)
    await runner.setup()
    log = logging.getLogger("locker")
    try:
        url = await start_site(runner, config.http, port)
    except BaseException:  # a bad certificate, a port taken: the store still closes cleanly
        await runner.cleanup()
        raise
    log.info("listening on %s", url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before READY: a stop may follow at once
        loop.add_signal_handler(sig, stop.set)
    systemd = Notifier()
    systemd.notify(f"READY=1\nSTATUS=ready: {len(config.compartments)} compartments,"
                   f" started in {locker.started_in_s or 0:.2f} s")
    watchdog = asyncio.create_task(systemd.watchdog(locker), name="systemd watchdog")
    await stop.wait()
    log.info("stopping")
    systemd.notify("STOPPING=1")
    watchdog.cancel()
    await runner.cleanup()
    log.info("stopped; store closed")
    return exit_code(app)


def known_secrets(config: LockerConfig) -> list[str]:
    """Every secret the daemon holds, for the log redaction filter."""
    from locker.domain.codes import load_ops_token

    found: list[str] = []
    paths = [config.digest_key_file, config.box_key_file,
             *(config.staff_secret_file(m.id) for m in config.staff.members)]
    if config.central is not None:
        paths.append(config.central.token_file)
    for path in paths:
        try:
            found.append(path.read_text(encoding="ascii").strip())
        except (OSError, UnicodeDecodeError):
            continue
    token = load_ops_token(config.ops_token_file)
    return [*found, *([token] if token else [])]


def cmd_init(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    os.umask(0o077)  # whatever the shell's umask, what init makes is the daemon's user's only
    make_private_dir(config.data_dir)
    made = create_keys(config)
    record_made = create_record_key(config.record_key_file)
    token_made = create_private_file(config.ops_token_file, secrets.token_urlsafe(32))
    expected = check_before_open(config.database)
    store = Store(config.database)
    identity = check_identity(store, config.locker_id, expected, time.time())
    sync_compartments(store, config, time.time())
    store.close()
    for path in config.data_dir.glob(config.database.name + "*"):
        make_private_file(path)
    print(f"code keys: {config.digest_key_file}, {config.box_key_file}"
          f" ({'created' if made else 'kept, they exist'})")
    print(f"box key for central: {box_public_key(load_box_key(config.box_key_file))}")
    print(f"record key: {config.record_key_file}"
          f" ({'created' if record_made else 'kept, it exists'});"
          " central's copy of its public half: `locker haccp key`")
    print(f"ops token: {config.ops_token_file} ({'created' if token_made else 'kept, it exists'})")
    print(f"store:  {config.database} (store {identity.store_id})")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    driver = "boards" if config.bus else "gpio"
    print(f"{config.path}: ok, locker {config.locker_id}, {len(config.compartments)} compartments"
          f" on {driver}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from locker.domain.update import pin_import_paths

    pin_import_paths()  # an update switches slots/current under us: stay on our own slot
    config = load_config(args.config, port=args.serial_port)
    os.umask(0o077)  # backups, marks, the WAL: nobody else's (systemd's UMask says so too)
    check_private_dir(config.data_dir)
    from hardware import factory

    return asyncio.run(serve(config, factory.lock_driver(config), port=args.http_port,
                             redact=args.redact))


def cmd_release(args: argparse.Namespace) -> int:
    import tempfile

    from locker.domain.update import parse_version
    from locker.release import build_wheel, publish, source_tree

    repo, keys = Path(args.repo), Path(args.keys)
    if args.refresh:
        publish(repo, keys, None, None, expires_days=args.expires_days)
        print(f"{repo}: re-signed; the metadata now expires in {args.expires_days:g} days")
        return 0
    if not args.version:
        raise LockerError("--version X.Y.Z is required (or --refresh to re-sign only)")
    parse_version(args.version)
    with tempfile.TemporaryDirectory(prefix="locker-release-") as built:
        if args.wheel:
            wheel = Path(args.wheel)
        else:
            source = Path(args.source) if args.source else source_tree()
            if source is None:
                raise LockerError("this is an installed copy, not a checkout: give --source DIR"
                                  " (the project's root) or --wheel FILE")
            wheel = build_wheel(source, args.version, Path(built),
                                isolation=not args.no_build_isolation)
        done = publish(repo, keys, wheel, args.version, expires_days=args.expires_days)
    assert done is not None
    print(f"published {done.path}: version {done.version}, {done.length} bytes,"
          f" sha256 {done.sha256}")
    print(f"the wheel: {repo / 'targets' / (done.sha256 + '.' + done.path)}")
    print(f"metadata expires {done.expires.isoformat()}; lockers trust {done.trusted_root}")
    return 0


def cmd_install_slot(args: argparse.Namespace) -> int:
    from locker.domain.update import parse_version
    from locker.slots import current_slot, install, other_slot, switch

    config = load_config(args.config)
    slots_dir = Path(args.slots) if args.slots else (
        config.update.slots_dir if config.update is not None else None)
    if slots_dir is None:
        raise LockerError(f"{config.path}: no [update] table: give --slots DIR")
    wheel = Path(args.wheel)  # name-X.Y.Z-..., or <sha256>.name-X.Y.Z-... from a repository
    version = wheel.name.split("-")[1] if wheel.name.count("-") >= 2 else ""
    parse_version(version)
    slot = other_slot(slots_dir)
    install(slots_dir, slot, wheel, version)
    print(f"{slots_dir / slot}: version {version} installed")
    if args.switch:
        before = current_slot(slots_dir)
        switch(slots_dir, slot)
        print(f"{slots_dir}/current -> {slot} (was {before or 'none'}); restart the service")
    return 0


def cmd_order_add(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if config.central is not None:
        # central draws the codes and tells the customers; one added here would be unknown
        # to central (its events would name an order it never had)
        raise LockerError(f"{config.path}: this locker takes its orders from central"
                          f" ({config.central.url}); add the order there")
    store = Store(config.database)
    try:
        codes = PickupCodes(settle_key_files(config, store, time.time()),
                            load_box_key(config.box_key_file))
        sync_compartments(store, config, time.time())  # the daemon may not have run yet
        if args.to_load:
            code = add_order_to_load(store, config, codes, time.time(), args.id,
                                     [parse_bag(b) for b in args.bag],
                                     window_hours=args.window_hours, accessible=args.accessible)
            print(f"order {args.id} waiting for a courier to load it")
            print("the code is shown this once: tell the customer")
            print(f"pickup code: {grouped(code)}")
            return 0
        added = add_ready_order(store, config, codes, time.time(), args.id,
                                [parse_bag(b) for b in args.bag],
                                window_hours=args.window_hours, accessible=args.accessible)
    finally:
        store.close()
    where = ", ".join(f"{cid} ({loc})" for cid, loc in added.compartments)
    print(f"order {added.order_id} ready in {where}")
    # the code is shown to whoever added the order, as central would message the customer
    print("the code is shown this once: tell the customer")
    print(f"pickup code: {grouped(added.code)}")
    return 0


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    """A new code digest key, the open orders re-keyed; the daemon must be stopped."""
    config = load_config(args.config)
    lock = DataDirLock(config.database)
    lock.acquire()  # refuses while the daemon runs: it holds the old key
    try:
        store = Store(config.database)
        try:
            count = rotate_keys(config, store, time.time())
        finally:
            store.close()
    finally:
        lock.release()
    print(f"{config.digest_key_file}: new key; {count} open orders re-keyed; the box key is kept")
    return 0


def cmd_staff_secret(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    member = next((m for m in config.staff.members if m.id == args.id), None)
    if member is None:
        raise LockerError(f"{config.path}: no [[staff.members]] with id {args.id!r}")
    path = config.staff_secret_file(member.id)
    made = create_secret(path)
    secret = load_secret(path)
    print(f"{path}: {'created' if made else 'exists, kept'}")
    # shown once to the person enrolling the phone; it is what a QR code would carry
    uri = pyotp.TOTP(secret).provisioning_uri(name=member.id, issuer_name=config.locker_id)
    print(f"authenticator app: {uri}")
    return 0


def _day(text: str) -> float:
    try:
        return time.mktime(time.strptime(text, "%Y-%m-%d"))
    except ValueError:
        raise LockerError(f"bad date {text!r}: write YYYY-MM-DD") from None


def cmd_haccp_export(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = Store(config.database)
    start, end = _day(args.from_), _day(args.to) + 86400  # --to is inclusive
    try:
        if args.out == "-":
            rows = export_csv(store, start, end, sys.stdout)
        else:
            with open(args.out, "w", newline="", encoding="utf-8") as out:
                rows = export_csv(store, start, end, out)
            print(f"{args.out}: {rows} readings from {args.from_} to {args.to}")
    finally:
        store.close()
    return 0


def cmd_haccp_verify(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    public = (load_public_pem(Path(args.key).read_text("ascii")) if args.key
              else load_record_key(config.record_key_file).public_key())
    store = Store(config.database)
    start, end = _day(args.from_), _day(args.to) + 86400
    try:
        verdict = verify(store.read(), public, config.locker_id, start, end)
    finally:
        store.close()
    span = f"rows {verdict.first_row}-{verdict.last_row}" if verdict.readings else "no rows"
    if verdict.broken is not None:
        b = verdict.broken
        print(f"BROKEN at row {b.row} ({b.zone} {_local_time(b.at)}): {b.why};"
              f" {verdict.readings} readings and {verdict.heads} signed days checked before it")
        return 1
    print(f"ok: {verdict.readings} readings ({span}) follow one another; {verdict.heads}"
          f" signed day heads match; {verdict.unsigned} readings since the last signed head"
          f" (signed when their day ends)"
          + (f"; {verdict.unchained} recorded before the chain began" if verdict.unchained
             else ""))
    return 0


def cmd_haccp_certificate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = Store(config.database)
    try:
        certificate = (certificates.kept(store.read(), args.order)
                       or certificates.provisional(store.read(), config, args.order,
                                                   time.time()))
    finally:
        store.close()
    if args.html:
        Path(args.html).write_text(render_html(certificate), encoding="utf-8")
        print(f"{args.html}: the certificate of order {args.order}", file=sys.stderr)
    print(json.dumps(certificate.wire(), indent=2))
    return 0


def cmd_haccp_key(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    print(public_pem(load_record_key(config.record_key_file)), end="")
    return 0


def _local_time(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def cmd_orders(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = Store(config.database)
    for row in store.read().all(
        "SELECT o.id, o.state, o.sequence, group_concat(oc.compartment_id, ' ') AS compartments"
        " FROM orders o LEFT JOIN order_compartments oc ON oc.order_id = o.id"
        " GROUP BY o.id ORDER BY o.created_at"):
        print(f"{row['id']:<24} {row['state']:<11} {row['compartments'] or ''}")
    store.close()
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    store = Store(config.database)
    for event in store.events(after=args.after, limit=args.limit):
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(event.at))
        subject = event.compartment_id or event.order_id or ""
        print(f"{event.seq:>6} {stamp} {event.kind:<24} {subject:<10} {event.payload}")
    store.close()
    return 0


def cmd_throttle(args: argparse.Namespace) -> int:
    """The guessing throttle of each scope; --clear forgets it (central hears who and why)."""
    config = load_config(args.config)
    if args.clear and not (args.reason or "").strip():
        raise LockerError("--clear needs --reason: central reads who cleared it and why")
    store = Store(config.database)
    try:
        now = time.time()
        if args.clear:
            with store.transaction(now) as tx:
                attempts.clear(tx, config.throttle, SCOPES, now, f"cli:{getpass.getuser()}",
                               args.reason.strip())
        for scope, view in attempts.report(store.read(), config.throttle, now).items():
            print(f"{scope:<7} wait {view['wait_s']:>4.1f} s, recent wrong codes"
                  f" {view['recent_wrong_codes']:.2f}, a wrong code now would set"
                  f" {view['delay_after_a_wrong_code_s']:.1f} s")
    finally:
        store.close()
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    copy = take(config.database, Path(args.to))
    print(f"{copy.path}: store {copy.identity.store_id} of locker {copy.identity.locker_id},"
          f" events up to {copy.outbox_seq}, {copy.size} bytes")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    copy = restore(config.database, config.locker_id, Path(args.from_), time.time())
    taken = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(copy.taken_at))
    print(f"{config.database}: restored from {copy.path} (its last event {taken}); the store it"
          " replaced is kept beside it (locker.db.replaced-*). Start the daemon again: unanswered"
          " unlocks in the copy are never pulsed, central sends again what came after it")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from locker.demo import run_demo

    return asyncio.run(run_demo(Path(args.config), script=args.script,
                                auto_close_s=args.auto_close, http_port=args.http_port,
                                data_dir=Path(args.data_dir) if args.data_dir else None))


def cmd_doctor(args: argparse.Namespace) -> int:
    from locker.doctor import run_doctor

    return run_doctor(Path(args.config), serial_port=args.serial_port, verbose=args.verbose)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return value


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="locker", description=__doc__.splitlines()[0])
    top.add_argument("--version", action="version", version=__version__)
    top.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    top.add_argument("--log-format", choices=("auto", "text", "json"), default="auto",
                     help="json: one object per line for journald (auto: json under systemd)")
    sub = top.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the locker's TOML file")
        return p

    p = command("init", "create the locker secret and the store")
    p.set_defaults(func=cmd_init)
    p = command("check-config", "read and check a config file")
    p.set_defaults(func=cmd_check)
    p = command("run", "run the daemon against the hardware in the config")
    p.add_argument("--serial-port", help="override bus.port")
    p.add_argument("--http-port", type=int, help="override http.port")
    p.set_defaults(func=cmd_run)
    p = command("order-add", "add an order, ready to collect (prints its pickup code), or to load")
    p.add_argument("--id", required=True, help="order id")
    p.add_argument("--bag", action="append", required=True,
                   help="zone:size, e.g. frozen:M (repeat for each bag)")
    p.add_argument("--window-hours", type=float, help="pickup window (default from config)")
    p.add_argument("--accessible", action="store_true", help="lowest compartments first")
    p.add_argument("--to-load", action="store_true",
                   help="wait for a courier to load it instead of making it ready now")
    p.set_defaults(func=cmd_order_add)
    p = command("rotate-keys", "a new code digest key, every open order re-keyed (daemon stopped)")
    p.set_defaults(func=cmd_rotate_keys)
    p = command("staff-secret", "create a courier's or technician's TOTP secret")
    p.add_argument("--id", required=True, help="the member's id in [[staff.members]]")
    p.set_defaults(func=cmd_staff_secret)
    p = command("throttle", "show the guessing throttle (pickup codes, staff logins)")
    p.add_argument("--clear", action="store_true", help="forget the wrong codes of both scopes")
    p.add_argument("--reason", help="why (required with --clear; sent to central)")
    p.set_defaults(func=cmd_throttle)
    haccp = sub.add_parser("haccp", help="the cold-chain record (HACCP)")
    haccp_sub = haccp.add_subparsers(dest="haccp_command", required=True)
    p = haccp_sub.add_parser(
        "export", help="write the temperature record between two days as CSV")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the locker's TOML file")
    p.add_argument("--from", dest="from_", required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--to", required=True, help="last day, YYYY-MM-DD (included)")
    p.add_argument("--out", default="-", help="CSV file (default: standard output)")
    p.set_defaults(func=cmd_haccp_export)
    p = haccp_sub.add_parser("verify", help="re-check the record's hash chain and signed days")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the locker's TOML file")
    p.add_argument("--from", dest="from_", required=True, help="first day, YYYY-MM-DD")
    p.add_argument("--to", required=True, help="last day, YYYY-MM-DD (included)")
    p.add_argument("--key", help="the public key to check against (PEM; default: the locker's)")
    p.set_defaults(func=cmd_haccp_verify)
    p = haccp_sub.add_parser("certificate", help="an order's cold-chain certificate (JSON)")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the locker's TOML file")
    p.add_argument("order", help="the order's id")
    p.add_argument("--html", help="also write it as a one-page HTML file with the curve")
    p.set_defaults(func=cmd_haccp_certificate)
    p = haccp_sub.add_parser("key", help="print the public half of the locker's record key")
    p.add_argument("--config", "-c", default=DEFAULT_CONFIG, help="the locker's TOML file")
    p.set_defaults(func=cmd_haccp_key)
    p = command("orders", "list orders and their compartments")
    p.set_defaults(func=cmd_orders)
    p = command("events", "print the outbox (the events waiting for central)")
    p.add_argument("--after", type=int, default=0)
    p.add_argument("--limit", type=int, default=1000)
    p.set_defaults(func=cmd_events)
    p = sub.add_parser("release", help="build a version's wheel and publish it, signed, into"
                       " an update repository (TUF)", description="build a version's wheel and"
                       " publish it, signed, into an update repository (TUF)")
    p.add_argument("--version", help="X.Y.Z, newer than what the lockers run")
    p.add_argument("--repo", required=True, help="the repository folder central serves")
    p.add_argument("--keys", required=True, help="the signing keys' folder (made on first use;"
                   " keep it off the lockers)")
    p.add_argument("--expires-days", type=_positive, default=30.0,
                   help="targets, snapshot and timestamp expire after this (default 30)")
    p.add_argument("--source", help="the project's root (default: this checkout)")
    p.add_argument("--wheel", help="publish this wheel instead of building one")
    p.add_argument("--no-build-isolation", action="store_true",
                   help="build with this environment's setuptools (offline)")
    p.add_argument("--refresh", action="store_true",
                   help="publish nothing new, only re-sign with fresh expiries")
    p.set_defaults(func=cmd_release)
    p = command("install-slot", "install a wheel into the slot not running (first install,"
                " or by hand)")
    p.add_argument("--wheel", required=True, help="a wheel built by `locker release`")
    p.add_argument("--slots", help="the slots folder (default: [update] slots_dir)")
    p.add_argument("--switch", action="store_true", help="then point `current` at it")
    p.set_defaults(func=cmd_install_slot)
    p = command("doctor", "check this machine can run the locker: config, secrets, store,"
                " serial port, boards, doors, GPIO, probes, clock, disk")
    p.add_argument("--serial-port", help="override bus.port")
    p.set_defaults(func=cmd_doctor)
    p = command("backup", "copy the store, consistently, even while the daemon runs")
    p.add_argument("--to", required=True, help="the copy (compressed when it ends in .xz or .gz)")
    p.set_defaults(func=cmd_backup)
    p = command("restore", "put a backup of this locker in place of its store (daemon stopped)")
    p.add_argument("--from", dest="from_", required=True, help="a copy made by locker backup,"
                   " or the rolling one in data_dir/backups")
    p.set_defaults(func=cmd_restore)
    p = command("simulate", "run the locker against simulated boards, with demo orders")
    p.add_argument("--script", action="store_true",
                   help="type the demo codes automatically and exit when all are collected")
    p.add_argument("--auto-close", type=float, default=3.0,
                   help="seconds before the simulated customer closes an opened door")
    p.add_argument("--http-port", type=int, default=None, help="override http.port")
    p.add_argument("--data-dir", help="keep the store here (default: a fresh temporary folder)")
    p.set_defaults(func=cmd_simulate)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    # the composition root: the codecs register their protocols' declarations, which every
    # command's config check reads (locker.domain.lockboards, ADR 0001); pure byte work, no port
    # opened
    import hardware.codecs  # noqa: F401

    args = parser().parse_args(argv)
    args.redact = logs.setup(args.log_format, verbose=args.verbose)
    try:
        code: int = args.func(args)
    except LockerError as exc:
        print(f"locker: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
