"""docs/central-api.yaml and simulator/central.py hold together: the document is valid OpenAPI 3.1,
it lists exactly the reference central's routes, and what the central answers fits its schemas."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import aiohttp
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.public import PrivateKey
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from simulator.central import RunningCentral, create_central_app, start_central

DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "central-api.yaml"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))
    return loaded


def _prefix(doc: dict[str, Any], path: str) -> str:
    """The URL path a document path lives under: its own `servers`, else the document's."""
    servers = doc["paths"][path].get("servers") or doc["servers"]
    return str(urlparse(servers[0]["url"]).path).rstrip("/")


def test_the_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc["servers"][0]["url"] == "https://central.example.com/v1"
    assert "not part of the locker protocol" in " ".join(doc["info"]["description"].lower().split())


def test_the_document_lists_exactly_the_routes_of_the_app(doc: dict[str, Any],
                                                          tmp_path: Path) -> None:
    documented = {(method.upper(), _prefix(doc, path) + path)
                  for path, item in doc["paths"].items() for method in item if method in METHODS}
    app = create_central_app(tmp_path, admin_token="x")
    served = {(route.method, route.resource.canonical)
              for route in app.router.routes() if route.method != "HEAD"
              and route.resource is not None}
    assert documented == served


def test_admin_calls_are_tagged_and_use_the_admin_token(doc: dict[str, Any]) -> None:
    for path, item in doc["paths"].items():
        for method, operation in ((m, o) for m, o in item.items() if m in METHODS):
            admin = path.startswith("/admin/")
            assert (operation["tags"] == ["reference central (admin)"]) == admin, (method, path)
            security = operation.get("security", doc["security"])
            assert security == ([{"adminToken": []}] if admin else [{"lockerToken": []}])
    schemes = doc["components"]["securitySchemes"]
    assert schemes["lockerToken"] == {**schemes["lockerToken"], "type": "http",
                                      "scheme": "bearer"}
    assert (schemes["adminToken"]["in"], schemes["adminToken"]["name"]) == ("header",
                                                                            "X-Admin-Token")


# ---- what the central answers fits the document ------------------------------------------------


class Checked:
    """Calls the central by document path and checks each body against the document's schema."""

    def __init__(self, doc: dict[str, Any], session: aiohttp.ClientSession,
                 central: RunningCentral) -> None:
        self.doc, self.session, self.central = doc, session, central
        self.called: set[tuple[str, str]] = set()

    def schema(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}", "components": self.doc["components"]}

    def check(self, schema: dict[str, Any], instance: Any, what: str) -> None:
        errors = [e.message for e in OAS31Validator(
            {**schema, "components": self.doc["components"]}).iter_errors(instance)]
        assert not errors, f"{what}: {errors}"

    async def call(self, method: str, path: str, *, body: Any = None, query: str = "",
                   token: str | None = None, **params: str) -> tuple[int, Any]:
        operation = self.doc["paths"][path][method.lower()]
        if body is not None:
            request_schema = operation["requestBody"]["content"]["application/json"]["schema"]
            self.check(request_schema, body, f"request of {method} {path}")
        headers = ({"Authorization": f"Bearer {token}"} if token is not None
                   else {"X-Admin-Token": self.central.admin_token})
        url = self.central.url + _prefix(self.doc, path) + path.format(**params) + query
        async with self.session.request(method, url, json=body, headers=headers) as response:
            status, answer = response.status, await response.json()
        declared = operation["responses"].get(str(status))
        assert declared is not None, f"{method} {path} answered {status}, not documented"
        if "$ref" in declared:
            declared = self.doc["components"]["responses"][declared["$ref"].rsplit("/", 1)[1]]
        self.check(declared["content"]["application/json"]["schema"], answer,
                   f"{status} answer of {method} {path}")
        self.called.add((method.upper(), path))
        return status, answer


async def certificates_fit(checked: Checked, box_key: str) -> None:
    """A locker provisioned with its record key: a signed certificate and day head are held
    as verified, a forged certificate is held with why it is not."""
    call, key = checked.call, Ed25519PrivateKey.generate()
    record_key = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    status, locker = await call("POST", "/admin/lockers", body={
        "id": "L-0002", "box_key": box_key, "record_key": record_key})
    assert status == 201
    assert (await call("POST", "/admin/lockers", body={
        "id": "L-0003", "box_key": box_key, "record_key": "not a key"}))[0] == 400

    def collected(seq: int, order_id: str, text: str, signature: str) -> dict[str, Any]:
        return {"id": str(uuid.uuid4()), "seq": seq, "at": time.time(), "kind": "order.collected",
                "category": "order", "compartment_id": None, "order_id": order_id,
                "payload": {"actor": "customer",
                            "certificate": {"certificate": text, "signature": signature}}}

    good = json.dumps({"kind": "cold_chain_certificate", "locker": "L-0002", "order": "B-1"})
    forged = good.replace("B-1", "B-2")
    head = "ab" * 32
    day = {"id": str(uuid.uuid4()), "seq": 3, "at": time.time(), "kind": "haccp.day_signed",
           "category": "coldchain", "compartment_id": None, "order_id": None,
           "payload": {"day": "2026-12-01", "row": 288, "head": head, "signature": key.sign(
               f"haccp-head|L-0002|2026-12-01|288|{head}".encode()).hex()}}
    bags = [{"zone": "fresh", "size": "M"}, {"zone": "ambient", "size": "S"}]
    assert (await call("POST", "/admin/lockers/{locker_id}/orders", locker_id="L-0002",
                       body={"id": "B-1", "bags": bags, "window_hours": 72}))[0] == 201
    kept = {"id": str(uuid.uuid4()), "seq": 4, "at": time.time(), "kind": "order.bag_withheld",
            "category": "order", "compartment_id": "F01", "order_id": "B-1",
            "payload": {"compartment": "F01", "zone": "fresh", "reason": "excursion",
                        "minutes_above": 25.5, "minutes_below": 0.0, "peak_c": 7.2}}
    events = [collected(1, "B-1", good, key.sign(good.encode()).hex()),
              collected(2, "B-2", forged, key.sign(good.encode()).hex()), day, kept]
    assert (await call("POST", "/lockers/{locker_id}/events", body={"events": events},
                       token=locker["token"], locker_id="L-0002"))[0] == 200
    path = "/admin/lockers/{locker_id}/orders/{order_id}/certificate"
    status, held = await call("GET", path, locker_id="L-0002", order_id="B-1")
    assert status == 200 and held["verified"] and held["text"] == good
    status, held = await call("GET", path, locker_id="L-0002", order_id="B-2")
    assert status == 200 and not held["verified"] and "signature" in held["why"]
    assert (await call("GET", path, locker_id="L-0002", order_id="B-3"))[0] == 404
    status, order = await call("GET", "/admin/lockers/{locker_id}/orders/{order_id}",
                               locker_id="L-0002", order_id="B-1")
    assert status == 200 and order["withheld"] == [{
        "compartment": "F01", "zone": "fresh", "reason": "excursion", "minutes_above": 25.5,
        "peak_c": 7.2}]
    status, heads = await call("GET", "/admin/lockers/{locker_id}/haccp/heads",
                               locker_id="L-0002")
    assert status == 200 and [h["verified"] for h in heads["heads"]] == [True]
    assert (await call("GET", "/admin/lockers/{locker_id}/haccp/heads",
                       locker_id="L-9999"))[0] == 404


@pytest.fixture
async def checked(doc: dict[str, Any], tmp_path: Path) -> AsyncIterator[Checked]:
    central = await start_central(tmp_path / "central", admin_token="admin")
    async with aiohttp.ClientSession() as session:
        yield Checked(doc, session, central)
    await central.stop()


async def test_every_answer_fits_the_document(checked: Checked, doc: dict[str, Any]) -> None:
    call = checked.call
    box_key = base64.b64encode(bytes(PrivateKey.generate().public_key)).decode()
    status, locker = await call("POST", "/admin/lockers", body={"id": "L-0001",
                                                                 "box_key": box_key})
    assert status == 201
    token = locker["token"]
    assert (await call("POST", "/admin/lockers", body={"id": "L-0001",
                                                        "box_key": box_key}))[0] == 409
    bags = [{"zone": "frozen", "size": "M"}, {"zone": "ambient", "size": "L"}]
    order_body = {"id": "A-1001", "bags": bags, "window_hours": 72, "accessible": False}
    assert (await call("POST", "/admin/lockers/{locker_id}/orders", body=order_body,
                       locker_id="L-0001"))[0] == 201
    assert (await call("GET", "/admin/lockers/{locker_id}/orders/{order_id}",
                       locker_id="L-0001", order_id="A-1001"))[0] == 200
    assert (await call("POST", "/admin/lockers/{locker_id}/orders", locker_id="L-0001", body={
        "id": "A-1002", "bags": bags, "window_hours": 72, "customer": "cust-1"}))[0] == 201
    assert (await call("GET", "/admin/lockers/{locker_id}/orders/{order_id}",
                       locker_id="L-0001", order_id="A-1002"))[1]["customer"] == "cust-1"
    assert (await call("GET", "/admin/customers/{customer_id}",
                       customer_id="cust-1"))[1]["assisted"] is False
    command = {"action": "open_compartment", "ttl_s": 120,
               "args": {"compartment": "A03", "reason": "customer stuck, ticket 4411"}}
    status, signed = await call("POST", "/admin/lockers/{locker_id}/commands", body=command,
                                locker_id="L-0001")
    assert status == 201
    checked.check(checked.schema("CommandBody"), json.loads(signed["body"]), "command body")
    assert (await call("POST", "/admin/lockers/{locker_id}/orders/{order_id}/cancel",
                       locker_id="L-0001", order_id="A-1001"))[0] == 200

    status, feed = await call("GET", "/lockers/{locker_id}/feed", query="?wait=0&limit=10",
                              token=token, locker_id="L-0001")
    assert status == 200 and len(feed["items"]) == 4
    event = {"id": str(uuid.uuid4()), "seq": 1, "at": time.time(), "kind": "door.opened",
             "category": "door", "compartment_id": "A03", "order_id": None,
             "payload": {"actor": "customer"}}
    assert (await call("POST", "/lockers/{locker_id}/events", body={"events": [event]},
                       token=token, locker_id="L-0001"))[0] == 200
    beat = {"at": time.time(), "version": "0.4.0", "ready": True, "cursor": feed["cursor"],
            "compartments": {"free": 40, "reserved": 2, "loaded": 20, "out_of_service": 4},
            "orders": {"ready": 1}, "zones": {"fresh": {"celsius": 3.1, "setpoint_c": 3.0,
                                                          "compressor": False}},
            "alarms": [], "outbox": {"depth": 0, "oldest_at": None, "dropped": 0}}
    assert (await call("POST", "/lockers/{locker_id}/heartbeat", body=beat, token=token,
                       locker_id="L-0001"))[0] == 200
    assert (await call("GET", "/admin/lockers"))[0] == 200
    await certificates_fit(checked, box_key)
    assert (await call("GET", "/admin/lockers/{locker_id}/messages", locker_id="L-0001"))[0] == 200
    assert (await call("GET", "/admin/lockers/{locker_id}/events", query="?after=0",
                       locker_id="L-0001"))[0] == 200
    assert (await call("POST", "/admin/lockers/{locker_id}/raw", body={"item": [1]},
                       locker_id="L-0001"))[0] == 201
    assert (await call("POST", "/admin/faults", body={"mode": "slow", "delay_s": 0}))[0] == 200
    assert (await call("POST", "/admin/faults", body={"mode": "none"}))[0] == 200

    # refusals answer the Error body with a documented status
    assert (await call("GET", "/lockers/{locker_id}/feed", query="?wait=0", token="wrong",
                       locker_id="L-0001"))[0] == 401
    assert (await call("GET", "/lockers/{locker_id}/feed", query="?wait=301", token=token,
                       locker_id="L-0001"))[0] == 400
    assert (await call("GET", "/admin/lockers/{locker_id}/orders/{order_id}",
                       locker_id="L-0001", order_id="nope"))[0] == 404

    every = {(m.upper(), p) for p, item in doc["paths"].items() for m in item if m in METHODS}
    assert checked.called == every
