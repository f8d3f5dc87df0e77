"""/dashboard/connect/: the base URL, the organization's keys (by prefix) and copy-paste
snippets for curl, the OpenAI, Anthropic and Google SDKs and three coding agents.

Secrets are stored hashed and shown once, when a key is created, so the snippets read the
key from the TOKENHUB_API_KEY environment variable. Each SDK takes the base URL in its own
form: OpenAI's ends in /v1, Anthropic's and Google's are the bare origin (the SDK adds
/v1/messages or /v1beta/models/...).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from accounts.access import Capability, capability_required, role_allows
from accounts.http import PortalRequest
from accounts.models import ApiKey, Membership
from accounts.selectors import keys_visible_to
from billing.services import DEFAULT_GROUP
from relay.pages import models_priced

KEY_VARIABLE = "TOKENHUB_API_KEY"
# Shown when no model is served yet; /models/ lists the real ones.
EXAMPLE_MODEL = "gpt-4o-mini"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def public_base_url(request: HttpRequest) -> str:
    """Where clients reach this server: SITE_URL, the configured public address, unless it
    is a loopback address (the embedded default) and the page was reached at another one,
    say `make run PORT=8001` or a LAN address: then the address this browser used, which
    evidently reaches the server."""
    site = settings.SITE_URL.rstrip("/")
    parts = urlsplit(site)
    if (parts.hostname or "") in _LOOPBACK and request.get_host() != parts.netloc:
        return f"{request.scheme}://{request.get_host()}"
    return site


@dataclass(frozen=True)
class Snippet:
    slug: str
    title: str
    language: str  # for the <code> class: bash, python, javascript, toml, json
    code: str
    note: str | Promise = ""


@dataclass(frozen=True)
class SnippetGroup:
    title: str | Promise
    snippets: tuple[Snippet, ...]


# Served models a chat snippet should not pick (they answer other endpoints).
_NOT_CHAT = ("instruct", "embed", "image", "dall-e", "tts", "whisper", "audio", "video",
             "sora", "seedance", "moderation")  # fmt: skip


def _pick(models: list[str], *prefixes: str) -> str:
    """The first served chat model whose name starts with one of PREFIXES, else the first
    chat model, else the first model."""
    chat = [m for m in models if not any(word in m for word in _NOT_CHAT)] or models
    for model in chat:
        if model.startswith(prefixes):
            return model
    return chat[0] if chat else EXAMPLE_MODEL


def connect_snippets(*, base_url: str, models: list[str]) -> list[SnippetGroup]:
    """Every snippet, with BASE_URL (an origin, no trailing slash) in the form each client
    takes, and a served model of the matching family where there is one."""
    openai_base = f"{base_url}/v1"
    gpt = _pick(models, "gpt-", "o1", "o3", "o4")
    # Claude Code's main model and its small, fast one (titles, checks).
    claude = _pick([m for m in models if "haiku" not in m] or models, "claude-")
    haiku = _pick([m for m in models if "haiku" in m] or [claude], "claude-")
    gemini = _pick(models, "gemini-")
    key = KEY_VARIABLE
    hello = [{"role": "user", "content": "Hello!"}]
    curl = Snippet(
        "curl",
        "curl",
        "bash",
        f"curl {openai_base}/chat/completions \\\n"
        f'  -H "Authorization: Bearer ${key}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f"  -d '{json.dumps({'model': gpt, 'messages': hello})}'",
    )
    openai_python = Snippet(
        "openai-python",
        "OpenAI SDK · Python",
        "python",
        "import os\n\nfrom openai import OpenAI\n\n"
        f'client = OpenAI(base_url="{openai_base}", api_key=os.environ["{key}"])\n'
        "reply = client.chat.completions.create(\n"
        f'    model="{gpt}",\n'
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        ")\n"
        "print(reply.choices[0].message.content)",
        "pip install openai",
    )
    openai_js = Snippet(
        "openai-js",
        "OpenAI SDK · JavaScript",
        "javascript",
        'import OpenAI from "openai";\n\n'
        f'const client = new OpenAI({{ baseURL: "{openai_base}", apiKey: process.env.{key} }});\n'
        "const reply = await client.chat.completions.create({\n"
        f'  model: "{gpt}",\n'
        '  messages: [{ role: "user", content: "Hello!" }],\n'
        "});\n"
        "console.log(reply.choices[0].message.content);",
        "npm install openai",
    )
    anthropic_python = Snippet(
        "anthropic-python",
        "Anthropic SDK · Python",
        "python",
        "import os\n\nfrom anthropic import Anthropic\n\n"
        f'client = Anthropic(base_url="{base_url}", api_key=os.environ["{key}"])\n'
        "message = client.messages.create(\n"
        f'    model="{claude}",\n'
        "    max_tokens=1024,\n"
        '    messages=[{"role": "user", "content": "Hello!"}],\n'
        ")\n"
        "print(message.content[0].text)",
        "pip install anthropic",
    )
    anthropic_js = Snippet(
        "anthropic-js",
        "Anthropic SDK · JavaScript",
        "javascript",
        'import Anthropic from "@anthropic-ai/sdk";\n\n'
        f'const client = new Anthropic({{ baseURL: "{base_url}", apiKey: process.env.{key} }});\n'
        "const message = await client.messages.create({\n"
        f'  model: "{claude}",\n'
        "  max_tokens: 1024,\n"
        '  messages: [{ role: "user", content: "Hello!" }],\n'
        "});\n"
        "console.log(message.content[0].text);",
        "npm install @anthropic-ai/sdk",
    )
    google_python = Snippet(
        "google-python",
        "Google GenAI SDK · Python",
        "python",
        "import os\n\nfrom google import genai\nfrom google.genai import types\n\n"
        "client = genai.Client(\n"
        f'    api_key=os.environ["{key}"],\n'
        f'    http_options=types.HttpOptions(base_url="{base_url}"),\n'
        ")\n"
        f'reply = client.models.generate_content(model="{gemini}", contents="Hello!")\n'
        "print(reply.text)",
        "pip install google-genai",
    )
    google_js = Snippet(
        "google-js",
        "Google GenAI SDK · JavaScript",
        "javascript",
        'import { GoogleGenAI } from "@google/genai";\n\n'
        "const ai = new GoogleGenAI({\n"
        f"  apiKey: process.env.{key},\n"
        f'  httpOptions: {{ baseUrl: "{base_url}" }},\n'
        "});\n"
        "const reply = await ai.models.generateContent({\n"
        f'  model: "{gemini}",\n'
        '  contents: "Hello!",\n'
        "});\n"
        "console.log(reply.text);",
        "npm install @google/genai",
    )
    claude_code = Snippet(
        "claude-code",
        "Claude Code · shell",
        "bash",
        f'export ANTHROPIC_BASE_URL="{base_url}"\n'
        f'export ANTHROPIC_API_KEY="${key}"\n'
        f'export ANTHROPIC_MODEL="{claude}"\n'
        f'export ANTHROPIC_DEFAULT_HAIKU_MODEL="{haiku}"\n'
        "export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\n"
        "claude",
        _("Claude Code asks once whether to use this API key: answer yes."),
    )
    codex_config = Snippet(
        "codex",
        "Codex CLI · ~/.codex/config.toml",
        "toml",
        f'model = "{gpt}"\n'
        'model_provider = "tokenhub"\n\n'
        "[model_providers.tokenhub]\n"
        'name = "TokenHub"\n'
        f'base_url = "{openai_base}"\n'
        f'env_key = "{key}"\n'
        'wire_api = "responses"',
        _("Then run codex in a shell where TOKENHUB_API_KEY is set."),
    )
    gemini_settings = Snippet(
        "gemini-cli-settings",
        "Gemini CLI · ~/.gemini/settings.json",
        "json",
        json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}}, indent=2),
    )
    gemini_cli = Snippet(
        "gemini-cli",
        "Gemini CLI · shell",
        "bash",
        f'export GOOGLE_GEMINI_BASE_URL="{base_url}"\n'
        f'export GEMINI_API_KEY="${key}"\n'
        f"gemini -m {gemini}",
    )
    return [
        SnippetGroup(_("HTTP"), (curl,)),
        SnippetGroup(
            _("SDKs"),
            (openai_python, openai_js, anthropic_python, anthropic_js, google_python, google_js),
        ),
        SnippetGroup(_("Coding agents"), (claude_code, codex_config, gemini_settings, gemini_cli)),
    ]


def _relay_keys(membership: Membership) -> list[ApiKey]:
    """Keys of the active organization this person may see that can call models now."""
    now = timezone.now()
    return [
        key
        for key in keys_visible_to(membership=membership).filter(status=ApiKey.Status.ACTIVE)
        if ApiKey.Scope.RELAY in key.scopes and key.is_usable(now)
    ]


@capability_required(Capability.VIEW_ORG)
def connect_page(request: PortalRequest) -> HttpResponse:
    organization = request.organization
    membership = request.membership
    group = organization.pricing_group
    models = [
        row.model
        for row in models_priced(
            group=group.name if group else DEFAULT_GROUP,
            multiplier=group.multiplier if group else Decimal(1),
        )
    ]
    keys = _relay_keys(membership)
    chosen = request.GET.get("key", "")
    key = next((k for k in keys if str(k.pk) == chosen), keys[0] if keys else None)
    base_url = public_base_url(request)
    context = {
        "section": "connect",
        "base_url": base_url,
        "keys": keys,
        "key": key,
        "key_variable": KEY_VARIABLE,
        "can_create_keys": role_allows(membership.role, Capability.USE_KEYS),
        "models": models,
        "groups": connect_snippets(base_url=base_url, models=models),
    }
    return render(request, "relay/connect.html", context)
