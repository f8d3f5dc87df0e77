"""A loopback stand-in for an OAuth 2.0 / OpenID Connect provider (GitHub's and a generic
OIDC issuer's endpoints), run in a thread. It checks what allauth sends (client id, secret,
code, redirect URI, bearer token) and answers like the real provider."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import jwt

CLIENT_ID = "stub-client-id"
CLIENT_SECRET = "stub-client-secret"
ACCESS_TOKEN = "stub-access-token"


@dataclass
class Identity:
    uid: str
    email: str
    name: str
    verified: bool = True


@dataclass
class ProviderStub:
    identity: Identity
    code: str = "the-one-code"
    requests: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ProviderStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                return

            def _send(self, status: int, payload: Any) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                path = urlparse(self.path).path
                stub.requests.append(("POST", path, form))
                if path in ("/login/oauth/access_token", "/token"):
                    if (form.get("client_id"), form.get("client_secret")) != (
                        CLIENT_ID,
                        CLIENT_SECRET,
                    ) or form.get("code") != stub.code:
                        self._send(400, {"error": "invalid_grant"})
                        return
                    token: dict[str, Any] = {"access_token": ACCESS_TOKEN, "token_type": "bearer"}
                    if path == "/token":
                        token["id_token"] = stub.id_token()
                    self._send(200, token)
                    return
                self._send(404, {"error": "not found"})

            def do_GET(self) -> None:
                path = urlparse(self.path).path
                stub.requests.append(("GET", path, {"auth": self.headers.get("Authorization")}))
                ident = stub.identity
                if path == "/.well-known/openid-configuration":
                    self._send(200, stub.discovery())
                    return
                if self.headers.get("Authorization") not in (
                    f"token {ACCESS_TOKEN}",
                    f"Bearer {ACCESS_TOKEN}",
                ):
                    self._send(401, {"message": "Bad credentials"})
                    return
                if path == "/api/v3/user":
                    self._send(200, {"id": int(ident.uid), "login": "octo", "name": ident.name})
                elif path == "/api/v3/user/emails":
                    self._send(
                        200, [{"email": ident.email, "primary": True, "verified": ident.verified}]
                    )
                elif path == "/userinfo":
                    self._send(200, stub.claims())
                else:
                    self._send(404, {"message": "Not Found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def discovery(self) -> dict[str, Any]:
        return {
            "issuer": self.url,
            "authorization_endpoint": f"{self.url}/authorize",
            "token_endpoint": f"{self.url}/token",
            "userinfo_endpoint": f"{self.url}/userinfo",
            "jwks_uri": f"{self.url}/jwks",
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
        }

    def claims(self) -> dict[str, Any]:
        ident = self.identity
        return {
            "sub": ident.uid,
            "email": ident.email,
            "email_verified": ident.verified,
            "name": ident.name,
        }

    def id_token(self) -> str:
        now = int(time.time())
        claims = {**self.claims(), "iss": self.url, "aud": CLIENT_ID, "iat": now, "exp": now + 300}
        return jwt.encode(claims, "stub-signing-key-of-32-bytes-min!", algorithm="HS256")
