"""English and Simplified Chinese: the committed catalog is complete and compiled, the
language switcher (Django's /i18n/setlang/) and the theme switcher work, English stays the
default."""

from __future__ import annotations

import ast
import gettext
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from accounts.models import User
from accounts.services import user_create

pytestmark = [pytest.mark.embedded]

LOCALE = Path(settings.BASE_DIR) / "locale"
PO = LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.po"
MO = PO.with_suffix(".mo")
# What makemessages must not scan (docs/operations.md gives the same command).
IGNORED = [".venv", "var", "tests", "benchmarks"]
KEYWORD_LINE = re.compile(r'(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?) (".*")')


# --- The catalog -----------------------------------------------------------------------------


@dataclass
class Entry:
    msgid: str = ""
    msgctxt: str | None = None
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)  # index 0 when not plural
    flags: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The key of the entry in a compiled catalog (context joined with EOT)."""
        return f"{self.msgctxt}\x04{self.msgid}" if self.msgctxt is not None else self.msgid


def po_entries(path: Path) -> list[Entry]:
    """The entries of a .po file, header (msgid "") excluded; obsolete (#~) ones skipped."""
    entries: list[Entry] = []
    current, target = Entry(), ""

    def close() -> None:
        nonlocal current
        if current.msgstr or current.msgid:
            entries.append(current)
        current = Entry()

    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            close()
        elif line.startswith("#,"):
            current.flags += [flag.strip() for flag in line[2:].split(",")]
        elif line.startswith("#"):
            continue
        elif match := KEYWORD_LINE.fullmatch(line):
            keyword, index, text = match.groups()
            value = ast.literal_eval(text)
            if keyword.startswith("msgstr"):
                target = f"msgstr{int(index or 0)}"
                current.msgstr[int(index or 0)] = value
            else:
                target = keyword
                setattr(current, keyword, value)
        elif line.startswith('"'):
            value = ast.literal_eval(line)
            if target.startswith("msgstr"):
                current.msgstr[int(target[6:])] += value
            else:
                setattr(current, target, getattr(current, target) + value)
        else:
            raise AssertionError(f"unexpected line in {path}: {line!r}")
    close()
    return [entry for entry in entries if entry.msgid]


def test_every_message_has_a_chinese_translation_and_none_is_fuzzy() -> None:
    entries = po_entries(PO)

    assert len(entries) > 300  # the portal's strings, not an empty catalog
    untranslated = [e.msgid for e in entries if not all(e.msgstr.values()) or not e.msgstr]
    fuzzy = [e.msgid for e in entries if "fuzzy" in e.flags]
    assert untranslated == []
    assert fuzzy == []
    assert "fuzzy" not in PO.read_text(encoding="utf-8").split("\n\n", 1)[0]  # the header


def test_translations_keep_their_placeholders() -> None:
    placeholder = re.compile(r"%\(\w+\)[sd]|%%|\{\{ *\w+ *\}\}")
    for entry in po_entries(PO):
        for text in entry.msgstr.values():
            assert sorted(placeholder.findall(text)) == sorted(placeholder.findall(entry.msgid)), (
                entry.msgid
            )


class _Compiled(gettext.GNUTranslations):
    _catalog: dict[object, str]  # filled when read; typeshed leaves the private table out


def test_the_committed_mo_is_compiled_from_the_committed_po() -> None:
    with MO.open("rb") as mo:
        catalog = _Compiled(mo)._catalog
    expected: dict[object, str] = {}
    for entry in po_entries(PO):
        if entry.msgid_plural is None:
            expected[entry.key] = entry.msgstr[0]
        else:
            expected.update({(entry.key, n): text for n, text in entry.msgstr.items()})

    compiled = {key: text for key, text in catalog.items() if key != ""}
    assert compiled == expected


def _copy_of_the_source(destination: Path) -> Path:
    root = Path(settings.BASE_DIR)
    skip = {*IGNORED, ".git", "artifacts", "node_modules", "__pycache__", ".mypy_cache"}
    shutil.copytree(
        root,
        destination,
        ignore=lambda directory, names: [
            n for n in names if n in skip or n.endswith((".pyc", ".sqlite3"))
        ],
        symlinks=True,
    )
    return destination


def test_makemessages_finds_no_string_missing_from_the_catalog(tmp_path: Path) -> None:
    if shutil.which("xgettext") is None or shutil.which("msgmerge") is None:
        pytest.fail("gettext is not installed: run scripts/ensure-test-servers.sh as root")
    copy = _copy_of_the_source(tmp_path / "src")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["TOKENHUB_VAR_DIR"] = str(tmp_path / "var")  # embedded settings, secrets in tmp

    subprocess.run(
        [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans"]
        + [f"--ignore={name}" for name in IGNORED],
        cwd=copy,
        env=env,
        check=True,
        capture_output=True,
    )

    committed = {entry.key for entry in po_entries(PO)}
    found = {entry.key for entry in po_entries(copy / PO.relative_to(settings.BASE_DIR))}
    assert found - committed == set(), "run makemessages and translate the new strings"
    assert committed - found == set(), "obsolete strings: run makemessages"


# --- The switchers ---------------------------------------------------------------------------


@pytest.fixture
def member(db: None) -> User:
    return user_create(email="reader@example.com", password="reader-pass-123", email_verified=True)


@pytest.fixture
def chinese(client: Client) -> Client:
    response = client.post("/i18n/setlang/", {"language": "zh-hans", "next": "/dashboard/"})
    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "zh-hans"
    return client


@pytest.mark.django_db
def test_english_is_the_default_language(client: Client, member: User) -> None:
    client.force_login(member)

    page = client.get("/dashboard/").content.decode()

    assert '<html lang="en"' in page
    assert "<h1>Overview</h1>" in page
    assert 'action="/i18n/setlang/"' in page  # the switcher is there


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("/dashboard/", ["<h1>概览</h1>", "余额", "创建 API 密钥"]),
        ("/dashboard/billing/", ["<h1>账单</h1>", "账目明细", "使用兑换码", "余额不足提醒"]),
        ("/dashboard/keys/", ["<h1>API 密钥</h1>", "创建密钥", "每分钟请求数"]),
        ("/dashboard/logs/", ["<h1>请求日志</h1>", "仅记录元数据", "导出 CSV"]),
        ("/dashboard/org/", ["所有者", "新建团队组织"]),
        ("/dashboard/settings/", ["<h1>设置</h1>", "两步验证", "下载我的数据"]),
        ("/dashboard/connect/", ["<h1>接入</h1>", "基础 URL", "Claude Code"]),
    ],
)
def test_portal_pages_render_in_chinese_after_switching(
    chinese: Client, member: User, url: str, expected: list[str]
) -> None:
    chinese.force_login(member)

    page = chinese.get(url).content.decode()

    assert '<html lang="zh-hans"' in page
    for text in expected:
        assert text in page
    assert "退出登录" in page  # the top bar


@pytest.mark.django_db
def test_the_sign_in_page_renders_in_chinese(chinese: Client) -> None:
    page = chinese.get("/accounts/login/").content.decode()

    assert '<html lang="zh-hans"' in page
    assert "注册" in page and "登录" in page
    assert "Sign in" not in page


@pytest.mark.django_db
def test_flash_messages_and_domain_errors_are_translated(chinese: Client, member: User) -> None:
    chinese.force_login(member)

    saved = chinese.post("/dashboard/billing/alert/", {"threshold_usd": "5"}, follow=True)
    refused = chinese.post("/dashboard/org/create", {"name": "  "}, follow=True)

    assert "余额不足提醒已保存。" in saved.content.decode()
    assert "组织需要一个名称" in refused.content.decode()


@pytest.mark.django_db
def test_api_errors_follow_the_language_too(chinese: Client, db: None) -> None:
    unverified = user_create(email="new@example.com", password="new-pass-123")
    chinese.force_login(unverified)

    response = chinese.post("/api/v1/keys", {"name": "k"}, content_type="application/json")

    assert response.status_code == 403
    assert response.json() == {"detail": "创建密钥前请先验证你的邮箱地址"}


@pytest.mark.django_db
def test_set_language_refuses_a_foreign_next(client: Client) -> None:
    response = client.post(
        "/i18n/setlang/", {"language": "zh-hans", "next": "https://evil.example/"}
    )

    assert response.status_code == 302
    assert "evil.example" not in response["Location"]


@pytest.mark.django_db
def test_the_theme_switcher_sets_the_cookie_and_the_page_follows(
    client: Client, member: User
) -> None:
    client.force_login(member)
    assert 'data-theme="auto"' in client.get("/dashboard/").content.decode()

    response = client.post("/preferences/theme", {"theme": "dark", "next": "/dashboard/keys/"})

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/keys/"
    cookie = client.cookies["theme"]
    assert cookie.value == "dark"
    assert cookie["samesite"] == "Lax"
    page = client.get("/dashboard/keys/").content.decode()
    assert 'data-theme="dark"' in page
    assert 'name="theme" value="dark" aria-pressed="true"' in page

    client.post("/preferences/theme", {"theme": "auto", "next": "/dashboard/"})
    assert 'data-theme="auto"' in client.get("/dashboard/").content.decode()


@pytest.mark.django_db
def test_the_theme_switcher_works_signed_out_and_without_next(client: Client) -> None:
    response = client.post("/preferences/theme", {"theme": "light"})

    assert (response.status_code, response["Location"]) == (302, "/")
    assert 'data-theme="light"' in client.get("/accounts/login/").content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize("theme", ["purple", "", "dark;Path=/admin", "DARK"])
def test_the_theme_switcher_refuses_unknown_themes(client: Client, theme: str) -> None:
    response = client.post("/preferences/theme", {"theme": theme, "next": "/dashboard/"})

    assert response.status_code == 400
    assert "theme" not in response.cookies


@pytest.mark.django_db
@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)", "http:/\\evil"]
)
def test_the_theme_switcher_never_redirects_off_site(client: Client, target: str) -> None:
    response = client.post(
        "/preferences/theme", {"theme": "dark", "next": target}, HTTP_REFERER=target
    )

    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.cookies["theme"].value == "dark"


@pytest.mark.django_db
def test_the_theme_switcher_only_accepts_post(client: Client) -> None:
    assert client.get("/preferences/theme", {"theme": "dark"}).status_code == 405
    assert "theme" not in client.cookies
