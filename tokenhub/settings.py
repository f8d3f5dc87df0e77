"""TokenHub settings: everything from the environment, safe embedded defaults.

Embedded mode (no DATABASE_URL, no REDIS_URL) needs no server at all: SQLite under
var/, in-process cache and rate limits, Celery on a filesystem broker. Production
sets the URLs; DEBUG off refuses to start without real secrets.
"""

from __future__ import annotations

import base64
import secrets
import sys
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from tokenhub.env import envbool, envfloat, envint, envlist, envstr, persisted_secret

# Makes generic Django classes (ModelAdmin[Model], QuerySet[Model]) subscriptable at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("TOKENHUB_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = envbool("DEBUG", False)
TESTING = "pytest" in sys.modules
# Embedded mode: no database server configured. Secrets may then be generated and kept
# under var/ (mode 0600); with a real DATABASE_URL and DEBUG off they must be given.
EMBEDDED = not envstr("DATABASE_URL")
_GENERATE_SECRETS = DEBUG or TESTING or EMBEDDED

SECRET_KEY = envstr("SECRET_KEY")
if not SECRET_KEY:
    if not _GENERATE_SECRETS:
        raise ImproperlyConfigured("SECRET_KEY is required when DEBUG is off")
    SECRET_KEY = persisted_secret(VAR_DIR / "secret_key", lambda: secrets.token_urlsafe(50))

# Fernet keys for secrets at rest (upstream provider keys). First encrypts, all decrypt.
ENCRYPTION_KEYS = envlist("TOKENHUB_ENCRYPTION_KEYS")
if not ENCRYPTION_KEYS:
    if not _GENERATE_SECRETS:
        raise ImproperlyConfigured("TOKENHUB_ENCRYPTION_KEYS is required when DEBUG is off")
    ENCRYPTION_KEYS = [
        persisted_secret(
            VAR_DIR / "encryption_key",
            lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        )
    ]

ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS")
SITE_URL = envstr("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "accounts",
    "billing",
    "relay",
    "logs",
]

MIDDLEWARE = [
    # Outermost and async-only, so the rest of the chain stays one synchronous block.
    "tokenhub.middleware.AsyncFileStreamsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "tokenhub.middleware.RefuseNulMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "tokenhub.middleware.TimeZoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "tokenhub.urls"
WSGI_APPLICATION = "tokenhub.wsgi.application"
ASGI_APPLICATION = "tokenhub.asgi.application"

TEMPLATES: list[dict[str, Any]] = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------
DATABASE_URL = envstr("DATABASE_URL") or f"sqlite:///{VAR_DIR / 'tokenhub.sqlite3'}"
_db: dict[str, Any] = dict(dj_database_url.parse(DATABASE_URL))
if _db["ENGINE"] == "django.db.backends.sqlite3":
    Path(_db["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    _db["OPTIONS"] = {
        # WAL lets readers proceed during writes; IMMEDIATE avoids upgrade deadlocks
        # between the relay's settle writes and the portal.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI every request runs in a fresh thread-sensitive context; Django's
    # native psycopg pool keeps connections open without CONN_MAX_AGE leaks.
    _db["CONN_MAX_AGE"] = 0
    _db.setdefault("OPTIONS", {})["pool"] = {
        "min_size": envint("DB_POOL_MIN", 2),
        "max_size": envint("DB_POOL_MAX", 20),
    }
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache and Redis ------------------------------------------------------------------
REDIS_URL = envstr("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "th",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {}
if CELERY_BROKER_URL == "filesystem://":
    # A broker that needs no server: queues are files under var/celery.
    _queue_dir = VAR_DIR / "celery" / "queue"
    _processed_dir = VAR_DIR / "celery" / "processed"
    for _d in (_queue_dir, _processed_dir):
        _d.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_queue_dir),
        "data_folder_out": str(_queue_dir),
        "processed_folder": str(_processed_dir),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ALWAYS_EAGER = envbool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE: dict[str, Any] = {
    "purge-request-logs": {"task": "logs.tasks.purge_request_logs", "schedule": 3600.0},
    # The request log's daily partitions, days ahead (PostgreSQL; a no-op on SQLite).
    "ensure-request-log-partitions": {
        "task": "logs.tasks.ensure_request_log_partitions",
        "schedule": 3600.0,
    },
    "sweep-expired-holds": {"task": "billing.tasks.sweep_expired_holds", "schedule": 15.0},
    "purge-expired-records": {"task": "accounts.tasks.purge_expired_records", "schedule": 3600.0},
    "purge-stored-responses": {"task": "relay.tasks.purge_stored_responses", "schedule": 300.0},
    "probe-channels": {
        "task": "relay.tasks.probe_channels",
        "schedule": float(envint("CHANNEL_PROBE_INTERVAL", 300)),
    },
}

# --- Auth -----------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher", *PASSWORD_HASHERS]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ManagementKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "UNAUTHENTICATED_USER": None,
}

# --- Email ----------------------------------------------------------------------------
EMAIL_BACKEND = envstr("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", 25)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "TokenHub <noreply@localhost>")
# Emails carry password-reset, verification and invitation links: printed to a production
# server's log, they hand accounts to whoever reads it. Production refuses the console
# backend unless the operator says so.
if (
    not DEBUG
    and not TESTING
    and not EMBEDDED
    and EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend"
    and not envbool("EMAIL_CONSOLE_IN_PRODUCTION", False)
):
    raise ImproperlyConfigured(
        "EMAIL_BACKEND is the console: emails with sign-in links would be printed to the log. "
        "Set EMAIL_BACKEND (e.g. django.core.mail.backends.smtp.EmailBackend with EMAIL_HOST), "
        "or EMAIL_CONSOLE_IN_PRODUCTION=1 to accept it."
    )

# --- i18n and static ------------------------------------------------------------------
LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing root
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True

# --- Security -------------------------------------------------------------------------
if not DEBUG and not TESTING and not EMBEDDED:
    SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", True)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if envbool("BEHIND_TLS_PROXY") else None
)
# Off by default: a deployment without TLS would otherwise redirect itself out of reach.
# docs/configuration.md gives the production values (`check --deploy` passes with them).
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # load balancers probe over HTTP
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", False)
# HSTS for subdomains and the browsers' preload list bind the whole domain, not this
# service: the operator's decision (the two settings above), not a deploy-check failure.
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]

# --- TokenHub -------------------------------------------------------------------------
LOG_RETENTION_DAYS = envint("LOG_RETENTION_DAYS", 90)
TRUSTED_PROXIES = envlist("TRUSTED_PROXIES")
RELAY_MAX_ATTEMPTS = envint("RELAY_MAX_ATTEMPTS", 3)
RELAY_MAX_BODY_MB = envint("RELAY_MAX_BODY_MB", 32)
# Seconds a client has to send a whole request body (slow or lying clients get a 408).
BODY_READ_TIMEOUT = envfloat("BODY_READ_TIMEOUT", 30)
RELAY_CONNECT_TIMEOUT = envfloat("RELAY_CONNECT_TIMEOUT", 10)
RELAY_FIRST_BYTE_TIMEOUT = envfloat("RELAY_FIRST_BYTE_TIMEOUT", 300)
RELAY_IDLE_TIMEOUT = envfloat("RELAY_IDLE_TIMEOUT", 120)
RELAY_DEFAULT_MAX_OUTPUT_TOKENS = envint("RELAY_DEFAULT_MAX_OUTPUT_TOKENS", 4096)
HOLD_TTL_SECONDS = envint("HOLD_TTL_SECONDS", 3600)
# Crash safety (billing/leases.py, billing/journal.py): each serving event loop renews a
# lease every LEASE_RENEW_SECONDS; the holds of a lease not renewed for LEASE_TTL_SECONDS
# are settled from their journal by the sweep, which every server runs at each renewal.
LEASE_TTL_SECONDS = envfloat("LEASE_TTL_SECONDS", 30)
LEASE_RENEW_SECONDS = envfloat("LEASE_RENEW_SECONDS", 10)
# Off leaves the sweep to Celery beat alone (the test suite's in-process server).
HOLD_SWEEP_IN_SERVER = envbool("HOLD_SWEEP_IN_SERVER", True)
# How often a stream in flight journals what it has delivered.
RELAY_JOURNAL_SECONDS = envfloat("RELAY_JOURNAL_SECONDS", 1.0)
# How long an opted-in organization's Responses conversations are kept (relay/response_store).
RESPONSES_STORE_SECONDS = envint("RESPONSES_STORE_SECONDS", 3600)

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.request": {"level": "ERROR"},
        # httpx logs every URL at INFO; upstream URLs can carry keys (?key=), so never.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
    },
}
# Below one second so that a revoked key stops within a second, request time included.
RELAY_KEY_CACHE_SECONDS = envfloat("RELAY_KEY_CACHE_SECONDS", 0.9)
RELAY_CATALOG_SECONDS = envfloat("RELAY_CATALOG_SECONDS", 2)
RELAY_COOLDOWN_FAILURES = envint("RELAY_COOLDOWN_FAILURES", 3)
RELAY_COOLDOWN_SECONDS = envint("RELAY_COOLDOWN_SECONDS", 30)
RELAY_COOLDOWN_MAX_SECONDS = envint("RELAY_COOLDOWN_MAX_SECONDS", 600)
CHANNEL_PROBE_TIMEOUT = envfloat("CHANNEL_PROBE_TIMEOUT", 20.0)
# Over-reporting channels (relay/services.channels_overreport_check): flagged when, in 24 h,
# at least this many of their requests, and this percentage of them, exceeded their holds.
CHANNEL_OVERREPORT_MIN_REQUESTS = envint("CHANNEL_OVERREPORT_MIN_REQUESTS", 5)
CHANNEL_OVERREPORT_MIN_PERCENT = envfloat("CHANNEL_OVERREPORT_MIN_PERCENT", 1.0)
CELERY_BEAT_SCHEDULE["flag-overreporting-channels"] = {
    "task": "relay.tasks.flag_overreporting_channels",
    "schedule": 600.0,
}
# GET /metrics (Prometheus): a bearer token, or a client address in these networks.
METRICS_TOKEN = envstr("METRICS_TOKEN")
METRICS_ALLOWED_IPS = envlist("METRICS_ALLOWED_IPS", "127.0.0.1/32,::1/128")
METRICS_FLUSH_SECONDS = envfloat("METRICS_FLUSH_SECONDS", 1.0)
# The dashboard warns when available credit drops below this (micro-USD).
LOW_BALANCE_BANNER_MICROS = envint("LOW_BALANCE_BANNER_MICROS", 1_000_000)
# PostgreSQL only: holds and settlements through billing/fastledger.py (see architecture).
RELAY_FAST_LEDGER = envbool("RELAY_FAST_LEDGER", True)
RELAY_DB_POOL_MAX = envint("RELAY_DB_POOL_MAX", 10)
# How long a settlement batch waits for company once the ledger's writer is idle (ms):
# fewer, larger commits (less database work per request, fewer lock waits for holds)
# against a log row that shows up this much later after its answer.
RELAY_SETTLE_WINDOW_MS = envfloat("RELAY_SETTLE_WINDOW_MS", 10.0)
# PostgreSQL only: the most credit (micro-USD) each serving event loop may lease from a
# busy wallet to admit its requests without a round trip (billing/credit_leases.py); 0 off.
RELAY_CREDIT_LEASE_MICROS = envint("RELAY_CREDIT_LEASE_MICROS", 5_000_000)

# --- Payments, top-ups, redemption codes, alerts (billing) ---------------------------------
from celery.schedules import crontab as _crontab  # noqa: E402

STRIPE_SECRET_KEY = envstr("STRIPE_SECRET_KEY")
STRIPE_WEBHOOK_SECRET = envstr("STRIPE_WEBHOOK_SECRET")
# Optional override of https://api.stripe.com (stripe-mock, tests).
STRIPE_API_BASE = envstr("STRIPE_API_BASE")
# Pinned: outgoing calls send it, webhooks rendered in another version are refused.
STRIPE_API_VERSION = envstr("STRIPE_API_VERSION", "2026-10-28.endive")
STRIPE_WEBHOOK_TOLERANCE = envint("STRIPE_WEBHOOK_TOLERANCE", 300)
EPAY_URL = envstr("EPAY_URL")
EPAY_PID = envstr("EPAY_PID")
EPAY_KEY = envstr("EPAY_KEY")
EPAY_TYPE = envstr("EPAY_TYPE", "alipay")
EPAY_CURRENCY = envstr("EPAY_CURRENCY", "CNY")
EPAY_PRICE_PER_USD = envstr("EPAY_PRICE_PER_USD", "7.2")
TOPUP_CURRENCY = "USD"
TOPUP_PRESETS_USD = envlist("TOPUP_PRESETS_USD", "5,10,25,50,100")
TOPUP_MIN_USD = envstr("TOPUP_MIN_USD", "1")
TOPUP_MAX_USD = envstr("TOPUP_MAX_USD", "10000")
# "threshold:percent" pairs: +5% credit from $100, +10% from $500.
TOPUP_BONUS_TIERS = envlist("TOPUP_BONUS_TIERS", "")
# A pending top-up still unpaid after this long is asked about at its provider.
TOPUP_RECOVER_AFTER_SECONDS = envint("TOPUP_RECOVER_AFTER_SECONDS", 600)
REDEEM_MAX_FAILURES = envint("REDEEM_MAX_FAILURES", 10)
REDEEM_FAILURE_WINDOW_SECONDS = envint("REDEEM_FAILURE_WINDOW_SECONDS", 900)
# Plans (docs/plans.md): a failed renewal keeps the plan this many days; an active
# subscription whose period ended this long ago without a renewal expires.
SUBSCRIPTION_GRACE_DAYS = envint("SUBSCRIPTION_GRACE_DAYS", 3)
# How often the monthly-quota emails (80 %, 100 %) and the expiry of lapsed
# subscriptions run (Celery beat).
SUBSCRIPTION_CHECK_SECONDS = envint("SUBSCRIPTION_CHECK_SECONDS", 300)
CELERY_BEAT_SCHEDULE |= {
    "low-balance-alerts": {"task": "billing.tasks.low_balance_check", "schedule": 60.0},
    "recover-topups": {"task": "billing.tasks.topups_recover", "schedule": 300.0},
    "plan-quota-alerts": {
        "task": "billing.tasks.plan_quota_check",
        "schedule": float(SUBSCRIPTION_CHECK_SECONDS),
    },
    "expire-subscriptions": {
        "task": "billing.tasks.subscriptions_expire",
        "schedule": float(SUBSCRIPTION_CHECK_SECONDS),
    },
    # Hourly: usage buckets older than the longest window.
    "purge-usage-buckets": {"task": "billing.tasks.usage_buckets_purge", "schedule": 3600.0},
    # Nightly, 03:17 UTC.
    "billing-reconcile": {
        "task": "billing.tasks.billing_reconcile",
        "schedule": _crontab(hour=3, minute=17),
    },
}

# --- OpenAPI schema of /api/v1 (drf-spectacular; Swagger UI assets from the sidecar) ----
INSTALLED_APPS += ["drf_spectacular", "drf_spectacular_sidecar"]
REST_FRAMEWORK["DEFAULT_SCHEMA_CLASS"] = "accounts.api_schema.ManagementApiSchema"
SPECTACULAR_SETTINGS = {
    "TITLE": "TokenHub management API",
    "DESCRIPTION": "Keys, organizations and members. Authenticate with a browser session "
    "or `Authorization: Bearer sk-th-…` for a key with the `manage` scope.",
    "VERSION": "v1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "KeyStatusEnum": "accounts.models.ApiKey.Status",
        "KeyStatusChangeEnum": [("active", "active"), ("disabled", "disabled")],
    },
}

# --- Accounts: sign-up and sign-in (django-allauth), OAuth, MFA, legal ----------------
from accounts.oauth_providers import providers_from_env  # noqa: E402

INSTALLED_APPS += [
    "allauth",
    "allauth.account",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.github",
    "allauth.socialaccount.providers.discord",
    "allauth.socialaccount.providers.google",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.socialaccount.providers.telegram",
    "allauth.socialaccount.providers.weixin",
    "allauth.mfa",
    "allauth.usersessions",
]
MIDDLEWARE += [
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    "accounts.middleware.PolicyMiddleware",
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/dashboard/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/accounts/login/"
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "accounts.adapters.SocialAccountAdapter"
MFA_ADAPTER = "accounts.adapters.MFAAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_SESSION_REMEMBER = None  # None: a "Remember me" box on the sign-in form
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
ACCOUNT_REAUTHENTICATION_TIMEOUT = 300
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[TokenHub] "
# Email the person when their password, email addresses or second factors change, and when
# they sign in from an address never seen for them.
ACCOUNT_EMAIL_NOTIFICATIONS = True
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if SITE_URL.startswith("https") else "http"
# allauth's default rate limits apply (login, failed logins per IP and per account,
# sign-up, password reset, email confirmation): see docs/configuration.md.
SOCIALACCOUNT_PROVIDERS = providers_from_env(envstr)
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False  # link an existing account only from its settings
SOCIALACCOUNT_LOGIN_ON_GET = False  # the provider button posts (no login CSRF by a link)
SOCIALACCOUNT_QUERY_EMAIL = True
SOCIALACCOUNT_STORE_TOKENS = False  # we only need the identity, not the provider's tokens
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_PASSKEY_LOGIN_ENABLED = True
MFA_TOTP_ISSUER = envstr("MFA_TOTP_ISSUER", "TokenHub")
MFA_TOTP_TOLERANCE = 1  # accept the previous and next 30 s code too (phone clocks drift)
# WebAuthn needs HTTPS except on localhost during development and tests.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG or TESTING
USERSESSIONS_TRACK_ACTIVITY = True
# Cloudflare Turnstile on sign-up and sign-in, only when both keys are set.
TURNSTILE_SITE_KEY = envstr("TURNSTILE_SITE_KEY")
TURNSTILE_SECRET_KEY = envstr("TURNSTILE_SECRET_KEY")
TURNSTILE_VERIFY_URL = envstr(
    "TURNSTILE_VERIFY_URL", "https://challenges.cloudflare.com/turnstile/v0/siteverify"
)
ACCOUNT_FORMS = {"login": "accounts.signin_form.LoginForm"}
# Days before a material Terms/Privacy update takes effect that users are told of it.
LEGAL_NOTICE_DAYS = envint("LEGAL_NOTICE_DAYS", 14)
# How long a "Download my data" archive stays downloadable.
DATA_EXPORT_HOURS = envint("DATA_EXPORT_HOURS", 48)
CELERY_BEAT_SCHEDULE["purge-data-exports"] = {
    "task": "accounts.tasks.purge_data_exports",
    "schedule": 3600.0,
}
ACCOUNT_SIGNUP_FORM_CLASS = "accounts.forms.SignupForm"
_context_processors: list[str] = TEMPLATES[0]["OPTIONS"]["context_processors"]
_context_processors.append("accounts.context_processors.legal_notice")
_context_processors.append("accounts.context_processors.announcement")
# Legal documents (and later the whole portal) in the visitor's language: en or zh-hans.
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.common.CommonMiddleware"),
    "django.middleware.locale.LocaleMiddleware",
)
# Cookies are limited to session, CSRF, language, theme and the browser's time zone (`tz`,
# read by TimeZoneMiddleware): flash messages live in the session.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# --- Media: images and asynchronous video tasks (relay/media) ------------------------------
# A video task still unfinished this long after submit is failed and its hold released.
MEDIA_TASK_TIMEOUT = envint("MEDIA_TASK_TIMEOUT", 86400)
# A video hold outlives its task's timeout by this much, so the hold sweep never releases
# credit of a task the poller may still settle.
MEDIA_HOLD_MARGIN_SECONDS = envint("MEDIA_HOLD_MARGIN_SECONDS", 3600)
MEDIA_POLL_EVERY = envfloat("MEDIA_POLL_EVERY", 5)
MEDIA_POLL_MIN_SECONDS = envint("MEDIA_POLL_MIN_SECONDS", 5)
MEDIA_POLL_MAX_SECONDS = envint("MEDIA_POLL_MAX_SECONDS", 60)
MEDIA_POLL_BATCH = envint("MEDIA_POLL_BATCH", 100)
MEDIA_STATUS_REFRESH_SECONDS = envfloat("MEDIA_STATUS_REFRESH_SECONDS", 2)
CELERY_BEAT_SCHEDULE["poll-media-tasks"] = {
    "task": "relay.tasks.poll_media_tasks",
    "schedule": MEDIA_POLL_EVERY,
}

# Translations of the portal (locale/<lang>/LC_MESSAGES/django.po and its compiled .mo, both
# committed); the visitor's choice lives in the `django_language` cookie (set by /i18n/setlang/).
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SAMESITE = "Lax"
if not DEBUG and not TESTING and not EMBEDDED:
    LANGUAGE_COOKIE_SECURE = SESSION_COOKIE_SECURE

# --- Embedded mode without side effects: operator's mailbox, demo payments, broker files ---
# With no mail server configured (embedded mode, neither EMAIL_BACKEND nor EMAIL_HOST set),
# emails are kept as files under var/mailbox/ for MAILBOX_RETENTION_HOURS and shown to
# superusers in the admin (accounts/mailbox.py); production keeps the console check above.
MAILBOX_DIR = Path(envstr("MAILBOX_DIR", str(VAR_DIR / "mailbox")))
MAILBOX_RETENTION_HOURS = envint("MAILBOX_RETENTION_HOURS", 72)
if EMBEDDED and not envstr("EMAIL_BACKEND") and not envstr("EMAIL_HOST"):
    EMAIL_BACKEND = "accounts.mailbox.MailboxBackend"
# The admin site with TokenHub's branding, the mailbox page and a link to /admin/status/.
INSTALLED_APPS[INSTALLED_APPS.index("django.contrib.admin")] = (
    "tokenhub.admin_site.TokenHubAdminConfig"
)
# A demo payment provider (billing/providers/demo.py) that credits without moving money:
# on by default in embedded mode only; a production server refuses it unless told.
PAYMENTS_DEMO = envbool("PAYMENTS_DEMO", EMBEDDED)
if (
    PAYMENTS_DEMO
    and not DEBUG
    and not TESTING
    and not EMBEDDED
    and not envbool("PAYMENTS_DEMO_IN_PRODUCTION", False)
):
    raise ImproperlyConfigured(
        "PAYMENTS_DEMO credits wallets without payment. Turn it off in production, "
        "or set PAYMENTS_DEMO_IN_PRODUCTION=1 to accept it (a staging server)."
    )
# kombu's filesystem broker keeps its exchange table in ./control unless told: under var/.
if CELERY_BROKER_URL == "filesystem://":
    _control_dir = VAR_DIR / "celery" / "control"
    _control_dir.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS["control_folder"] = str(_control_dir)

# --- Statements, credit notes and receipts: the operator's own invoice details ------------
from decimal import Decimal, InvalidOperation  # noqa: E402

# Printed as the issuer on every document (billing/documents.py); the tax rate is a percent
# as a decimal string ("20" or "7.5").
OPERATOR_LEGAL_NAME = envstr("OPERATOR_LEGAL_NAME", "TokenHub")
OPERATOR_ADDRESS = envstr("OPERATOR_ADDRESS")
OPERATOR_TAX_ID = envstr("OPERATOR_TAX_ID")
OPERATOR_EMAIL = envstr("OPERATOR_EMAIL")
OPERATOR_TAX_RATE = envstr("OPERATOR_TAX_RATE", "0")
try:
    _tax_rate: Decimal | None = Decimal(OPERATOR_TAX_RATE)
except InvalidOperation:
    _tax_rate = None
if _tax_rate is None or not _tax_rate.is_finite() or not 0 <= _tax_rate < 100:
    raise ImproperlyConfigured(f"OPERATOR_TAX_RATE must be a percent, got {OPERATOR_TAX_RATE!r}")
# fpdf2's font subsetting (fontTools) logs every glyph table at INFO.
LOGGING["loggers"]["fontTools"] = {"level": "WARNING"}
# Monthly statements of the previous month, issued and emailed on the 1st at 02:30 UTC.
CELERY_BEAT_SCHEDULE["issue-monthly-statements"] = {
    "task": "billing.statement_tasks.statements_issue_previous_month",
    "schedule": _crontab(day_of_month=1, hour=2, minute=30),
}

# --- Margins: the hourly channel margin alert (relay/margin_alerts.py) ------------------
CELERY_BEAT_SCHEDULE["margin-alerts"] = {
    "task": "relay.margin_tasks.margin_alerts",
    "schedule": 3600.0,
}

# --- Support work orders (accounts/support) -------------------------------------------
# Where new work orders and customer replies are announced; empty: every active staff user.
SUPPORT_EMAIL = envstr("SUPPORT_EMAIL")

# --- Verified organizations (accounts/verification) ------------------------------------
# Documents of a closed (approved, rejected, withdrawn) request are deleted this many days
# after it closed; the decision, the legal details and the documents' names, sizes and
# hashes are kept.
VERIFICATION_DOCUMENT_RETENTION_DAYS = envint("VERIFICATION_DOCUMENT_RETENTION_DAYS", 90)
# Top-ups above this amount in USD need a verified organization (empty: no limit); credit
# lines always do (billing.services.wallet_credit_limit_set).
VERIFICATION_REQUIRED_ABOVE_USD = envstr("VERIFICATION_REQUIRED_ABOVE_USD")
try:
    _verification_above = (
        Decimal(VERIFICATION_REQUIRED_ABOVE_USD) if VERIFICATION_REQUIRED_ABOVE_USD else None
    )
except InvalidOperation:
    _verification_above = Decimal(-1)
if (
    _verification_above is not None
    and not (_verification_above.is_finite() and _verification_above >= 0)
) or VERIFICATION_DOCUMENT_RETENTION_DAYS < 1:
    raise ImproperlyConfigured(
        "VERIFICATION_REQUIRED_ABOVE_USD must be empty or an amount in USD and "
        "VERIFICATION_DOCUMENT_RETENTION_DAYS at least 1"
    )
# Autodiscovery imports each app's tasks.py only: the purge task lives in a subpackage.
CELERY_IMPORTS = (*globals().get("CELERY_IMPORTS", ()), "accounts.verification.tasks")
CELERY_BEAT_SCHEDULE["purge-verification-documents"] = {
    "task": "accounts.verification.tasks.verification_documents_purge",
    "schedule": _crontab(hour=3, minute=43),
}

# --- Abuse and anomaly detection, payment velocity (logs/anomalies) ----------------------
# A key's (or organization's) last hour of spend alerts when it is over MULTIPLE times its
# average hour of the previous 7 days and at least MIN_SPEND, or over the CEILING (empty:
# no ceiling). One alert per key per COOLDOWN. Amounts in USD, as decimal strings.
ANOMALY_SPEND_MULTIPLE = envint("ANOMALY_SPEND_MULTIPLE", 10)
ANOMALY_MIN_SPEND_USD = envstr("ANOMALY_MIN_SPEND_USD", "5")
ANOMALY_CEILING_USD_PER_HOUR = envstr("ANOMALY_CEILING_USD_PER_HOUR")
ANOMALY_COOLDOWN_HOURS = envint("ANOMALY_COOLDOWN_HOURS", 6)
# Within the window, this many failed top-ups, this many top-ups under SMALL_USD, or any
# dispute flag the organization for review and freeze its top-ups until staff clear it.
PAYMENT_VELOCITY_WINDOW_HOURS = envint("PAYMENT_VELOCITY_WINDOW_HOURS", 24)
PAYMENT_VELOCITY_MAX_FAILED = envint("PAYMENT_VELOCITY_MAX_FAILED", 5)
PAYMENT_VELOCITY_SMALL_USD = envstr("PAYMENT_VELOCITY_SMALL_USD", "5")
PAYMENT_VELOCITY_MAX_SMALL = envint("PAYMENT_VELOCITY_MAX_SMALL", 10)
for _name in (
    "ANOMALY_MIN_SPEND_USD",
    "ANOMALY_CEILING_USD_PER_HOUR",
    "PAYMENT_VELOCITY_SMALL_USD",
):
    _value = globals()[_name]
    try:
        _usd = Decimal(_value) if _value else Decimal(0)
    except InvalidOperation:
        _usd = Decimal(-1)
    if not _usd.is_finite() or _usd < 0:
        raise ImproperlyConfigured(f"{_name} must be an amount in USD, got {_value!r}")
if ANOMALY_SPEND_MULTIPLE < 1 or ANOMALY_COOLDOWN_HOURS < 1 or PAYMENT_VELOCITY_WINDOW_HOURS < 1:
    raise ImproperlyConfigured(
        "ANOMALY_SPEND_MULTIPLE, ANOMALY_COOLDOWN_HOURS and PAYMENT_VELOCITY_WINDOW_HOURS "
        "must be at least 1"
    )
CELERY_BEAT_SCHEDULE["anomalies-scan"] = {
    "task": "logs.anomalies.tasks.anomalies_scan",
    "schedule": 300.0,
}
CELERY_BEAT_SCHEDULE["payment-velocity-scan"] = {
    "task": "billing.tasks.payment_velocity_scan",
    "schedule": 300.0,
}

# --- Invoices of credit lines (billing/invoices.py) -------------------------------------
# Issued on the 1st with the statements, due INVOICE_DUE_DAYS later; reminders
# INVOICE_REMINDER_DAYS_BEFORE the due date and on it; INVOICE_GRACE_DAYS after it the
# organization's keys are refused (402 invoice_overdue) until it is paid.
INVOICE_DUE_DAYS = envint("INVOICE_DUE_DAYS", 30)
INVOICE_REMINDER_DAYS_BEFORE = envint("INVOICE_REMINDER_DAYS_BEFORE", 7)
INVOICE_GRACE_DAYS = envint("INVOICE_GRACE_DAYS", 7)
if min(INVOICE_DUE_DAYS, INVOICE_REMINDER_DAYS_BEFORE, INVOICE_GRACE_DAYS) < 0:
    raise ImproperlyConfigured("INVOICE_*_DAYS cannot be negative")
CELERY_BEAT_SCHEDULE["invoices-overdue"] = {
    "task": "billing.invoice_tasks.invoices_overdue",
    "schedule": 3600.0,
}

# --- What verification unlocks in the relay (docs/enterprise.md) ------------------------
# Models (shell-style patterns) only verified organizations may call; the pricing group a
# verified organization without one of its own gets; the requests-per-minute limit of an
# unverified organization that has none of its own (empty: none).
VERIFIED_ONLY_MODELS = envlist("VERIFIED_ONLY_MODELS")
VERIFIED_PRICING_GROUP = envstr("VERIFIED_PRICING_GROUP")
UNVERIFIED_RPM_LIMIT: int | None = envint("UNVERIFIED_RPM_LIMIT", 0) or None
if UNVERIFIED_RPM_LIMIT is not None and UNVERIFIED_RPM_LIMIT < 0:
    raise ImproperlyConfigured("UNVERIFIED_RPM_LIMIT cannot be negative")
