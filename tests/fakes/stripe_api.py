"""A loopback stub of the parts of Stripe's API TokenHub calls, plus signed webhook events.

Served by a real HTTP server so the official `stripe` client does its real encoding,
headers and retries: checkout sessions (create with idempotency keys, retrieve), charges
(retrieve) and refunds (create). Tests move a session to paid with `pay()` and build the
events Stripe would send with `event()`, signed by `signed()`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlparse

import stripe

API_KEY = "sk_test_tokenhub"
WEBHOOK_SECRET = "whsec_test_tokenhub"


def _unflatten(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (a[b][0][c]=v) back into nested dicts (lists as dicts)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


class FakeStripe:
    def __init__(self, api_version: str) -> None:
        self.api_version = api_version
        self.sessions: dict[str, dict[str, Any]] = {}
        self.charges: dict[str, dict[str, Any]] = {}
        self.intents: dict[str, dict[str, Any]] = {}
        self.refunds: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._idempotent: dict[str, tuple[int, dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.fail_creates = False
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stub._handle(self, "GET")

            def do_POST(self) -> None:
                stub._handle(self, "POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeStripe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reset(self) -> None:
        with self._lock:
            self.sessions.clear()
            self.charges.clear()
            self.intents.clear()
            self.refunds.clear()
            self.requests.clear()
            self._idempotent.clear()
            self.fail_creates = False

    def _id(self, prefix: str) -> str:
        return f"{prefix}_test_{next(self._ids):06d}"

    # --- HTTP ----------------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length).decode() if length else ""
        path = urlparse(h.path).path
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._lock:
            self.requests.append((method, path, headers))
            if headers.get("authorization") != f"Bearer {API_KEY}":
                status, payload = 401, _error("invalid_request_error", "Invalid API Key")
            else:
                key = headers.get("idempotency-key", "") if method == "POST" else ""
                if key and key in self._idempotent:
                    status, payload = self._idempotent[key]
                else:
                    status, payload = self._route(method, path, _unflatten(parse_qsl(body)))
                    if key:
                        self._idempotent[key] = (status, payload)
        raw = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(raw)))
        h.send_header("Request-Id", "req_test")
        h.end_headers()
        h.wfile.write(raw)

    def _route(self, method: str, path: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        parts = path.strip("/").split("/")
        if method == "POST" and parts == ["v1", "checkout", "sessions"]:
            if self.fail_creates:
                return 400, _error("invalid_request_error", "Stripe says no")
            return 200, self._session_create(params)
        if method == "GET" and parts[:3] == ["v1", "checkout", "sessions"] and len(parts) == 4:
            return _found(self.sessions.get(parts[3]), "checkout session")
        if method == "GET" and parts[:2] == ["v1", "charges"] and len(parts) == 3:
            return _found(self.charges.get(parts[2]), "charge")
        if method == "GET" and parts[:2] == ["v1", "payment_intents"] and len(parts) == 3:
            return _found(self.intents.get(parts[2]), "payment_intent")
        if method == "POST" and parts == ["v1", "refunds"]:
            refund = {
                "id": self._id("re"),
                "object": "refund",
                "amount": int(params["amount"]),
                "payment_intent": params["payment_intent"],
                "status": "succeeded",
            }
            self.refunds.append(refund)
            return 200, refund
        return 404, _error("invalid_request_error", f"Unrecognized request URL ({method} {path})")

    def _session_create(self, params: dict[str, Any]) -> dict[str, Any]:
        item = params["line_items"]["0"]
        amount = int(item["price_data"]["unit_amount"]) * int(item["quantity"])
        sid = self._id("cs")
        session = {
            "id": sid,
            "object": "checkout.session",
            "mode": params["mode"],
            "amount_total": amount,
            "currency": item["price_data"]["currency"],
            "client_reference_id": params.get("client_reference_id"),
            "metadata": params.get("metadata", {}),
            "payment_intent_data": params.get("payment_intent_data", {}),
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": params["success_url"],
            "cancel_url": params["cancel_url"],
            "url": f"https://checkout.stripe.test/c/pay/{sid}",
        }
        self.sessions[sid] = session
        return session

    # --- test controls -------------------------------------------------------------------

    def pay(self, session_id: str, *, delayed: bool = False) -> dict[str, Any]:
        """The customer pays; a delayed method (e.g. bank debit) completes unpaid first."""
        with self._lock:
            session = self.sessions[session_id]
            pi, ch = self._id("pi"), self._id("ch")
            session.update(
                payment_intent=pi,
                status="complete",
                payment_status="unpaid" if delayed else "paid",
            )
            self.intents[pi] = {
                "id": pi,
                "object": "payment_intent",
                "amount": session["amount_total"],
                "currency": session["currency"],
                "metadata": session["payment_intent_data"].get("metadata", {}),
                "status": "succeeded",
            }
            self.charges[ch] = {
                "id": ch,
                "object": "charge",
                "amount": session["amount_total"],
                "amount_refunded": 0,
                "currency": session["currency"],
                "payment_intent": pi,
                "refunded": False,
                "metadata": {},
            }
            return dict(session)

    def settle_delayed(self, session_id: str) -> dict[str, Any]:
        with self._lock:
            self.sessions[session_id]["payment_status"] = "paid"
            return dict(self.sessions[session_id])

    def expire(self, session_id: str) -> None:
        with self._lock:
            self.sessions[session_id]["status"] = "expired"

    def foreign_charge(self, amount: int) -> dict[str, Any]:
        """A payment made outside TokenHub on the same Stripe account."""
        with self._lock:
            pi, ch = self._id("pi"), self._id("ch")
            self.intents[pi] = {"id": pi, "object": "payment_intent", "metadata": {}}
            self.charges[ch] = {"id": ch, "object": "charge", "amount": amount,
                                "amount_refunded": 0, "currency": "usd", "payment_intent": pi,
                                "refunded": False, "metadata": {}}  # fmt: skip
            return dict(self.charges[ch])

    def charge_for(self, session_id: str) -> dict[str, Any]:
        pi = self.sessions[session_id]["payment_intent"]
        return next(c for c in self.charges.values() if c["payment_intent"] == pi)

    def refund_charge(self, charge_id: str, amount: int) -> dict[str, Any]:
        """Refund part of a charge; the charge's amount_refunded is cumulative."""
        with self._lock:
            charge = self.charges[charge_id]
            charge["amount_refunded"] += amount
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            return dict(charge)

    def dispute(self, charge_id: str, amount: int | None = None) -> dict[str, Any]:
        charge = self.charges[charge_id]
        return {
            "id": self._id("du"),
            "object": "dispute",
            "amount": charge["amount"] if amount is None else amount,
            "charge": charge_id,
            "currency": charge["currency"],
            "payment_intent": charge["payment_intent"],
            "reason": "fraudulent",
            "status": "needs_response",
        }

    def event(self, type_: str, obj: dict[str, Any], *, event_id: str | None = None) -> str:
        """A webhook body as Stripe renders it for an endpoint on the pinned version."""
        return json.dumps(
            {
                "id": event_id or self._id("evt"),
                "object": "event",
                "api_version": self.api_version,
                "created": int(time.time()),
                "livemode": False,
                "pending_webhooks": 1,
                "type": type_,
                "data": {"object": obj},
            }
        )


def signed(payload: str, *, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    return str(stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp))


def _error(kind: str, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "message": message}}


def _found(obj: dict[str, Any] | None, what: str) -> tuple[int, dict[str, Any]]:
    return (200, obj) if obj else (404, _error("invalid_request_error", f"No such {what}"))
