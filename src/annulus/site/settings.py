"""Django settings for Annulus.

SQLite by default (``var/annulus.sqlite3``); ``DATABASE_URL=postgres://...`` selects PostgreSQL
through psycopg 3. ``ANNULUS_DEBUG=1`` turns on Django's debug pages (never in production).

Production is signalled by ``ANNULUS_PRODUCTION=1`` (``annulus serve --production`` sets it) or
by ``ANNULUS_SECRET_KEY`` being set. In production the secret key, the mail backend and the site
URL must be given (a missing one stops the start with one line naming it); cookies are Secure,
HSTS and the SSL redirect are on, and static files are served by WhiteNoise under hashed names
from ``collectstatic``'s output. Development, the demo and the tests keep a fixed development key
and plain static files.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={os.environ[name]!r} is not a yes/no value (use 1 or 0)")

PACKAGE_DIR = Path(__file__).resolve().parents[1]
BASE_DIR = PACKAGE_DIR.parents[1]  # the checkout: src/annulus/site -> repo
VAR_DIR = Path(os.environ.get("ANNULUS_VAR_DIR", BASE_DIR / "var"))

_PRODUCTION = _flag("ANNULUS_PRODUCTION", False) or "ANNULUS_SECRET_KEY" in os.environ
if _PRODUCTION and not os.environ.get("ANNULUS_SECRET_KEY"):
    raise ImproperlyConfigured("ANNULUS_SECRET_KEY must be set in production (a long random string, e.g. from "
                               "python -c 'import secrets; print(secrets.token_urlsafe(50))')")
SECRET_KEY = os.environ.get("ANNULUS_SECRET_KEY") or "annulus-development-key-change-me-in-production-0123456789"
DEBUG = os.environ.get("ANNULUS_DEBUG", "") == "1"
if _PRODUCTION and DEBUG:
    raise ImproperlyConfigured("ANNULUS_DEBUG=1 is refused in production (it shows settings and code on error pages)")
ALLOWED_HOSTS = [h for h in os.environ.get("ANNULUS_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "ninja",  # serves Swagger UI's JS/CSS from its static files (no CDN): /api/v1/docs works offline
    "annulus.audit",
    "annulus.accounts",
    "annulus.trial",
    "annulus.participants",
    "annulus.allocation",
    "annulus.visits",
    "annulus.selfentry",
    "annulus.safety",
    "annulus.monitoring",
    "annulus.casebooks",
    "annulus.queries",
    "annulus.exports",
    "annulus.reports",
]

MIDDLEWARE = [
    "annulus.site.dblost.LostConnectionMiddleware",  # a connection cut mid-request: reads run again, writes 503
    "annulus.site.middleware.ApiJsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "annulus.site.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files from the WSGI server itself, hashed names cached for a year
    "annulus.trial.middleware.ProtocolPerRequestMiddleware",  # the protocol in force read once per request
    "django.contrib.sessions.middleware.SessionMiddleware",
    "annulus.accounts.middleware.SessionIdleMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "annulus.accounts.middleware.LoginRequiredMiddleware",
    "annulus.accounts.middleware.PasswordChangeRequiredMiddleware",  # after the administrator's reset
    "annulus.site.badinput.BadInputMiddleware",  # NUL characters and escaped rule violations: 400 naming the field
]

ROOT_URLCONF = "annulus.site.urls"
WSGI_APPLICATION = "annulus.site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [PACKAGE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "annulus.accounts.context_processors.role",
                "annulus.trial.context_processors.navigation",
                "annulus.site.csp.nonce",
            ],
        },
    }
]

_default_sqlite = f"sqlite:///{VAR_DIR / 'annulus.sqlite3'}"
# PostgreSQL connections are kept for a minute and checked before each request reuses one, so that
# a request after a database restart or failover reconnects instead of failing with a 500.
DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL") or _default_sqlite, conn_max_age=60,
                                              conn_health_checks=True)}
# The owner of the tables, when the application connects as a role that owns nothing
# (annulus.dbroles): migrations run as the owner, who then grants the application its rights.
if os.environ.get("ANNULUS_OWNER_DATABASE_URL"):
    DATABASES["owner"] = dj_database_url.parse(os.environ["ANNULUS_OWNER_DATABASE_URL"], conn_max_age=0)
if os.environ.get("ANNULUS_TEST_DB_NAME"):
    # lets several test runs share one PostgreSQL server without colliding
    DATABASES["default"]["TEST"] = {"NAME": os.environ["ANNULUS_TEST_DB_NAME"]}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = ["annulus.accounts.backends.LockoutModelBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "annulus.accounts.validators.CharacterClassValidator"},
    {"NAME": "annulus.accounts.validators.CommonWordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Idle sessions end after 30 minutes (every request renews the cookie).
SESSION_COOKIE_AGE = int(os.environ.get("ANNULUS_SESSION_SECONDS", 30 * 60))
# the idle timeout slides with use, the session row written at most once a minute
# (annulus.accounts.middleware.SessionIdleMiddleware), not on every request
SESSION_SAVE_EVERY_REQUEST = False
SESSION_REFRESH_SECONDS = 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
CSRF_FAILURE_VIEW = "annulus.trial.views.csrf_failure"  # said in the page's language
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Production is served over HTTPS (usually a TLS proxy in front of gunicorn): cookies only over
# HTTPS, HSTS, and plain-HTTP requests redirected. ANNULUS_SSL_REDIRECT=0 when the proxy already
# redirects; ANNULUS_BEHIND_TLS_PROXY=1 trusts the proxy's X-Forwarded-Proto header (only when
# the proxy sets it and clients cannot reach gunicorn directly).
SESSION_COOKIE_SECURE = _PRODUCTION
CSRF_COOKIE_SECURE = _PRODUCTION
SECURE_SSL_REDIRECT = _PRODUCTION and _flag("ANNULUS_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = int(os.environ.get("ANNULUS_HSTS_SECONDS", 365 * 24 * 3600)) if _PRODUCTION else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = _flag("ANNULUS_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = _flag("ANNULUS_HSTS_PRELOAD", True)
if _flag("ANNULUS_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = _flag("ANNULUS_USE_X_FORWARDED_HOST", False)
# Content-Security-Policy (annulus.site.csp): scripts and style sheets only from this site; a
# <style> element needs the page's nonce; style attributes are allowed (they cannot run script).
ANNULUS_CSP = _flag("ANNULUS_CSP", True)

# Lock an account for one source (a client address) after this many failed password checks
# within the window; each further lock of that source lasts twice as long, up to the cap.
ANNULUS_LOCKOUT_FAILURES = 5
ANNULUS_LOCKOUT_MINUTES = 15
ANNULUS_LOCKOUT_MAX_MINUTES = 24 * 60
# The account-wide cap, whatever the number of sources: after this many failed password checks of
# one account from all sources together, with no pause as long as the window between them, every
# source is refused, for ANNULUS_LOCKOUT_MINUTES and twice as long at each further lock (capped as
# above). An attacker with many addresses gets no more guesses than this per lock.
ANNULUS_LOGIN_ACCOUNT_MAX_FAILURES = int(os.environ.get("ANNULUS_LOGIN_ACCOUNT_MAX_FAILURES", 20))
ANNULUS_LOGIN_ACCOUNT_WINDOW_MINUTES = int(os.environ.get("ANNULUS_LOGIN_ACCOUNT_WINDOW_MINUTES", 60))
# API tokens are refused this many days after they are issued.
ANNULUS_TOKEN_DAYS = int(os.environ.get("ANNULUS_TOKEN_DAYS", 90))

LANGUAGE_CODE = "en"
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
LOCALE_PATHS = [PACKAGE_DIR / "locale"]
# Dates and times read the same on every page and in both languages: 2026-03-05, 2026-03-05 14:30
# (annulus/formats/<language>/formats.py; input formats are Django's)
FORMAT_MODULE_PATH = ["annulus.formats"]
TIME_ZONE = "Asia/Shanghai"  # the site's zone for display; stored times are UTC
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [PACKAGE_DIR / "static"]
# `annulus serve --production` runs collectstatic into STATIC_ROOT: copies under hashed names that
# WhiteNoise serves with a year's cache lifetime (not pre-compressed: brotli over Swagger UI's and
# ReDoc's bundles takes a minute on two cores; the TLS proxy compresses on the fly). Elsewhere (development, demo, tests) the files
# are served from the source tree under their own names and nothing needs collecting.
STATIC_ROOT = Path(os.environ.get("ANNULUS_STATIC_ROOT", VAR_DIR / "static"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage" if _PRODUCTION
                    else "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = not _PRODUCTION
WHITENOISE_AUTOREFRESH = not _PRODUCTION

DATA_UPLOAD_MAX_MEMORY_SIZE = 2_500_000
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_500_000

# Mail. Without ANNULUS_EMAIL_BACKEND (development, the demo, tests) mail is written to files in
# var/mail/, never printed into the server log. A production installation
# (see _PRODUCTION above) must name its backend, e.g. django.core.mail.backends.smtp.EmailBackend
# with EMAIL_HOST/EMAIL_PORT from ANNULUS_EMAIL_HOST/ANNULUS_EMAIL_PORT.
if _PRODUCTION and not os.environ.get("ANNULUS_EMAIL_BACKEND"):
    raise ImproperlyConfigured("ANNULUS_EMAIL_BACKEND must be set in production, "
                               "e.g. django.core.mail.backends.smtp.EmailBackend")
EMAIL_BACKEND = os.environ.get("ANNULUS_EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("ANNULUS_EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = os.environ.get("ANNULUS_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("ANNULUS_EMAIL_PORT", "25"))
DEFAULT_FROM_EMAIL = os.environ.get("ANNULUS_FROM_EMAIL", "annulus@localhost")

# Participant self-entry: the class that sends a participant their questionnaire link (see
# annulus.selfentry.senders): FileSender writes one file per message under ANNULUS_VAR_DIR/selfentry-outbox,
# EmailSender mails it through the backend above. A site's SMS gateway is a class of its own named here.
ANNULUS_SELFENTRY_SENDER = os.environ.get("ANNULUS_SELFENTRY_SENDER", "annulus.selfentry.senders.FileSender")
# Links that do not work asked for from one address: after this many within the minutes given, the
# address gets the same page with 429 for every link, working or not, for that many minutes.
ANNULUS_SELFENTRY_GUESSES = int(os.environ.get("ANNULUS_SELFENTRY_GUESSES", "20"))
ANNULUS_SELFENTRY_GUESS_MINUTES = int(os.environ.get("ANNULUS_SELFENTRY_GUESS_MINUTES", "15"))

# Links in e-mails are absolute, built from this URL (the address users open the site at).
# The demo sets it to the URL it serves; production must set it.
if _PRODUCTION and not os.environ.get("ANNULUS_SITE_URL"):
    raise ImproperlyConfigured("ANNULUS_SITE_URL must be set in production, "
                               "e.g. https://annulus.example.org")
ANNULUS_SITE_URL = os.environ.get("ANNULUS_SITE_URL", "http://127.0.0.1:8000").rstrip("/")
if _PRODUCTION:
    # form posts from the site's own address pass the CSRF origin check even when the proxy in
    # front rewrites the Host header; ANNULUS_CSRF_TRUSTED_ORIGINS adds others (comma-separated)
    from urllib.parse import urlsplit

    _site = urlsplit(ANNULUS_SITE_URL)
    CSRF_TRUSTED_ORIGINS = [f"{_site.scheme}://{_site.netloc}"] + [
        o for o in os.environ.get("ANNULUS_CSRF_TRUSTED_ORIGINS", "").split(",") if o]

# The protocol file this installation runs (an amendment is loaded as a new version).
ANNULUS_PROTOCOL_FILE = os.environ.get("ANNULUS_PROTOCOL_FILE", str(BASE_DIR / "protocols" / "dlbp-admsc.yaml"))
# The 24-hour contact printed on every emergency letter when the protocol file names none
# (trial.emergency_contact), e.g. "Trial emergency line, +86 411 8363 5963".
ANNULUS_EMERGENCY_CONTACT = os.environ.get("ANNULUS_EMERGENCY_CONTACT", "")

# The audit key (annulus.audit.keys): a file outside the database, made by `annulus audit keygen`.
# With it every audit event gets a MAC, and checkpoints of the trail are written into
# AUDIT_CHECKPOINT_DIR after every AUDIT_CHECKPOINT_EVERY events or AUDIT_CHECKPOINT_MINUTES minutes
# (copy that folder off the database server); `annulus audit verify --checkpoints DIR` checks them.
AUDIT_KEY_FILE = os.environ.get("ANNULUS_AUDIT_KEY_FILE", "")
AUDIT_CHECKPOINT_DIR = os.environ.get("ANNULUS_AUDIT_CHECKPOINT_DIR", "")


def _positive(name: str, default: str) -> float:
    text = os.environ.get(name, default)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(f"{name} must be a number of 0 or more, not {text!r}")
    return value


AUDIT_CHECKPOINT_EVERY = int(_positive("ANNULUS_AUDIT_CHECKPOINT_EVERY", "1000"))
AUDIT_CHECKPOINT_MINUTES = _positive("ANNULUS_AUDIT_CHECKPOINT_MINUTES", "60")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}

VAR_DIR.mkdir(parents=True, exist_ok=True)
