"""A loopback stub of the parts of Stripe's API TokenHub calls, plus signed webhook events.

Served by a real HTTP server so the official `stripe` client does its real encoding,
headers and retries: checkout sessions (create with idempotency keys, retrieve), charges
(retrieve) and refunds (create); for plans, products (create, retrieve) and subscriptions
(retrieve, update, cancel). Tests move a session to paid with `pay()` (a subscription
checkout with `subscribe()`, renewals with `renew()`) and build the events Stripe would
send with `event()`, signed by `signed()`.
"""

from __future__ import annotations

import copy
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
        self.products: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.invoices: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.bodies: list[dict[str, Any]] = []
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

            def do_DELETE(self) -> None:
                stub._handle(self, "DELETE")

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
            self.products.clear()
            self.subscriptions.clear()
            self.invoices.clear()
            self.requests.clear()
            self.bodies.clear()
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
            self.bodies.append(_unflatten(parse_qsl(body)))
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
        if method == "POST" and parts == ["v1", "products"]:
            if params["id"] in self.products:
                return 400, _error(
                    "invalid_request_error", "Product already exists.", "resource_already_exists"
                )
            self.products[params["id"]] = {"object": "product", **params}
            return 200, self.products[params["id"]]
        if method == "GET" and parts[:2] == ["v1", "products"] and len(parts) == 3:
            return _found(self.products.get(parts[2]), "product")
        if parts[:2] == ["v1", "subscriptions"] and len(parts) == 3:
            sub = self.subscriptions.get(parts[2])
            if sub is None or method == "GET":
                return _found(sub, "subscription")
            if method == "DELETE":
                sub.update(status="canceled", cancel_at_period_end=False)
                return 200, sub
            return self._subscription_update(sub, params)
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
        product = item["price_data"].get("product")
        if params["mode"] == "subscription":
            assert product in self.products, f"no such product {product!r}"  # Stripe: 400
        sid = self._id("cs")
        session = {
            "id": sid,
            "object": "checkout.session",
            "mode": params["mode"],
            "line_items_params": item,
            "subscription_data": params.get("subscription_data", {}),
            "subscription": None,
            "customer_email": params.get("customer_email"),
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

    def _subscription_update(
        self, sub: dict[str, Any], params: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        if "cancel_at_period_end" in params:
            sub["cancel_at_period_end"] = params["cancel_at_period_end"] == "true"
        if "items" in params:
            change = params["items"]["0"]
            item = sub["items"]["data"][0]
            assert change["id"] == item["id"], "the update names another item"
            assert params.get("payment_behavior") == "pending_if_incomplete"
            price = change["price_data"]
            if price["product"] not in self.products:
                return 400, _error("invalid_request_error", "No such product")
            item["price"] = self._price(price)
            # The proration invoice is paid at once here (a card that works).
            self._invoice(sub, reason="subscription_update", proration=True)
        return 200, sub

    def _price(self, price_data: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self._id("price"),
            "object": "price",
            "product": price_data["product"],
            "unit_amount": int(price_data["unit_amount"]),
            "currency": price_data["currency"],
            "recurring": {"interval": price_data["recurring"]["interval"]},
        }

    def _invoice(
        self, sub: dict[str, Any], *, reason: str, paid: bool = True, proration: bool = False
    ) -> dict[str, Any]:
        item = sub["items"]["data"][0]
        start = int(time.time()) if proration else item["current_period_start"]
        invoice: dict[str, Any] = {
            "id": self._id("in"),
            "object": "invoice",
            "status": "paid" if paid else "open",
            "billing_reason": reason,
            "amount_paid": item["price"]["unit_amount"] if paid else 0,
            "amount_due": item["price"]["unit_amount"],
            "currency": item["price"]["currency"],
            "customer": sub["customer"],
            "parent": {
                "type": "subscription_details",
                "subscription_details": {
                    "subscription": sub["id"],
                    "metadata": dict(sub["metadata"]),
                },
            },
            "lines": {
                "object": "list",
                "data": [
                    {
                        "id": self._id("il"),
                        "object": "line_item",
                        "amount": item["price"]["unit_amount"],
                        "period": {"start": start, "end": item["current_period_end"]},
                        "parent": {
                            "type": "subscription_item_details",
                            "subscription_item_details": {
                                "subscription": sub["id"],
                                "subscription_item": item["id"],
                                "proration": proration,
                            },
                        },
                    }
                ],
            },
        }
        self.invoices[invoice["id"]] = invoice
        sub["latest_invoice"] = invoice["id"]
        return invoice

    # --- test controls -------------------------------------------------------------------

    def subscribe(
        self, session_id: str, *, period_days: int = 30
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The customer pays a subscription checkout: (session, subscription, first
        invoice), as Stripe has them afterwards."""
        with self._lock:
            session = self.sessions[session_id]
            now = int(time.time())
            sub: dict[str, Any] = {
                "id": self._id("sub"),
                "object": "subscription",
                "status": "active",
                "cancel_at_period_end": False,
                "cancel_at": None,
                "customer": self._id("cus"),
                "metadata": dict(session["subscription_data"].get("metadata", {})),
                "items": {
                    "object": "list",
                    "data": [
                        {
                            "id": self._id("si"),
                            "object": "subscription_item",
                            "quantity": 1,
                            "price": self._price(session["line_items_params"]["price_data"]),
                            "current_period_start": now,
                            "current_period_end": now + period_days * 86400,
                        }
                    ],
                },
            }
            self.subscriptions[sub["id"]] = sub
            invoice = self._invoice(sub, reason="subscription_create")
            session.update(subscription=sub["id"], status="complete", payment_status="paid")
            return copy.deepcopy(session), copy.deepcopy(sub), copy.deepcopy(invoice)

    def renew(self, sub_id: str, *, paid: bool = True, period_days: int = 30) -> dict[str, Any]:
        """The next period starts: its invoice is paid, or fails (past due)."""
        with self._lock:
            sub = self.subscriptions[sub_id]
            item = sub["items"]["data"][0]
            item["current_period_start"] = item["current_period_end"]
            item["current_period_end"] += period_days * 86400
            sub["status"] = "active" if paid else "past_due"
            return copy.deepcopy(self._invoice(sub, reason="subscription_cycle", paid=paid))

    def pay_invoice(self, invoice_id: str) -> dict[str, Any]:
        """A retried payment of an open invoice goes through."""
        with self._lock:
            invoice = self.invoices[invoice_id]
            invoice.update(status="paid", amount_paid=invoice["amount_due"])
            sub_id = invoice["parent"]["subscription_details"]["subscription"]
            self.subscriptions[sub_id]["status"] = "active"
            return copy.deepcopy(invoice)

    def end(self, sub_id: str) -> dict[str, Any]:
        """Stripe ends the subscription (its period ran out after a cancellation, or the
        retries of a failed payment gave up)."""
        with self._lock:
            sub = self.subscriptions[sub_id]
            sub.update(status="canceled", cancel_at_period_end=False)
            return copy.deepcopy(sub)

    def subscription(self, sub_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.subscriptions[sub_id])

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


def _error(kind: str, message: str, code: str | None = None) -> dict[str, Any]:
    error = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return {"error": error}


def _found(obj: dict[str, Any] | None, what: str) -> tuple[int, dict[str, Any]]:
    return (200, obj) if obj else (404, _error("invalid_request_error", f"No such {what}"))
