"""Sign-in providers configured from the environment (OAUTH_<PROVIDER>_CLIENT_ID / _SECRET).

Read by settings at start-up, so plain Python only: no models. A provider whose credentials
are missing is simply absent; operators can still add it as a Social application in the admin.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

# Environment name -> allauth provider id, and the provider's own settings.
_PROVIDERS: dict[str, tuple[str, dict[str, Any]]] = {
    "GITHUB": ("github", {"SCOPE": ["read:user", "user:email"]}),
    "DISCORD": ("discord", {"SCOPE": ["identify", "email"]}),
    "GOOGLE": ("google", {"SCOPE": ["openid", "profile", "email"]}),
    "TELEGRAM": ("telegram", {}),
    "WECHAT": ("weixin", {"SCOPE": ["snsapi_login"]}),
}
OIDC_PROVIDER_ID = "oidc"


def providers_from_env(env: Mapping[str, str] | Callable[[str], str]) -> dict[str, dict[str, Any]]:
    """SOCIALACCOUNT_PROVIDERS for every provider whose client id and secret are set.

    Telegram: OAUTH_TELEGRAM_CLIENT_ID is the bot's numeric id, OAUTH_TELEGRAM_SECRET its
    token. Generic OpenID Connect (Keycloak, Authentik, Okta, LinuxDO Connect...) also needs
    OAUTH_OIDC_SERVER_URL (the issuer; discovery is read from its
    /.well-known/openid-configuration) and takes a button label from OAUTH_OIDC_NAME.
    ENV is a mapping or a reader such as tokenhub.env.envstr (which also reads NAME_FILE).
    """
    read = env if callable(env) else (lambda name: env.get(name, ""))
    providers: dict[str, dict[str, Any]] = {}
    for env_name, (provider_id, options) in _PROVIDERS.items():
        client_id = read(f"OAUTH_{env_name}_CLIENT_ID").strip()
        secret = read(f"OAUTH_{env_name}_SECRET").strip()
        if client_id and secret:
            credentials = {"client_id": client_id, "secret": secret, "key": ""}
            providers[provider_id] = {**options, "APPS": [credentials]}
    client_id = read("OAUTH_OIDC_CLIENT_ID").strip()
    secret = read("OAUTH_OIDC_SECRET").strip()
    server_url = read("OAUTH_OIDC_SERVER_URL").strip()
    if client_id and secret and server_url:
        app: dict[str, Any] = {
            "provider_id": OIDC_PROVIDER_ID,
            "name": read("OAUTH_OIDC_NAME").strip() or "OpenID Connect",
            "client_id": client_id,
            "secret": secret,
            "settings": {"server_url": server_url},
        }
        providers["openid_connect"] = {"APPS": [app]}
    return providers
