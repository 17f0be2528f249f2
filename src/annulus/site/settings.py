"""Django settings for Annulus.

SQLite by default (``var/annulus.sqlite3``); ``DATABASE_URL=postgres://...`` selects PostgreSQL
through psycopg 3. ``ANNULUS_DEBUG=1`` turns on Django's debug pages (never in production).
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.utils.translation import gettext_lazy as _

PACKAGE_DIR = Path(__file__).resolve().parents[1]
BASE_DIR = PACKAGE_DIR.parents[1]  # the checkout: src/annulus/site -> repo
VAR_DIR = Path(os.environ.get("ANNULUS_VAR_DIR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get("ANNULUS_SECRET_KEY", "annulus-development-key-change-me-in-production-0123456789")
DEBUG = os.environ.get("ANNULUS_DEBUG", "") == "1"
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
    "annulus.safety",
    "annulus.monitoring",
    "annulus.casebooks",
    "annulus.queries",
    "annulus.exports",
    "annulus.reports",
]

MIDDLEWARE = [
    "annulus.site.middleware.ApiJsonErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "annulus.accounts.middleware.LoginRequiredMiddleware",
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
            ],
        },
    }
]

_default_sqlite = f"sqlite:///{VAR_DIR / 'annulus.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(os.environ.get("DATABASE_URL") or _default_sqlite, conn_max_age=60)}
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
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
CSRF_FAILURE_VIEW = "annulus.trial.views.csrf_failure"  # said in the page's language
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Lock an account for one source (a client address) after this many failed password checks
# within the window; each further lock of that source lasts twice as long, up to the cap.
ANNULUS_LOCKOUT_FAILURES = 5
ANNULUS_LOCKOUT_MINUTES = 15
ANNULUS_LOCKOUT_MAX_MINUTES = 24 * 60
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
STATIC_ROOT = BASE_DIR / "staticfiles"

DATA_UPLOAD_MAX_MEMORY_SIZE = 2_500_000
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_500_000

# Mail. Without ANNULUS_EMAIL_BACKEND (development, the demo, tests) mail is written to files in
# var/mail/, never printed into the server log. A production installation
# (ANNULUS_SECRET_KEY set) must name its backend, e.g. django.core.mail.backends.smtp.EmailBackend
# with EMAIL_HOST/EMAIL_PORT from ANNULUS_EMAIL_HOST/ANNULUS_EMAIL_PORT.
_PRODUCTION = "ANNULUS_SECRET_KEY" in os.environ
if _PRODUCTION and not os.environ.get("ANNULUS_EMAIL_BACKEND"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("ANNULUS_EMAIL_BACKEND must be set in production (ANNULUS_SECRET_KEY is set), "
                               "e.g. django.core.mail.backends.smtp.EmailBackend")
EMAIL_BACKEND = os.environ.get("ANNULUS_EMAIL_BACKEND", "django.core.mail.backends.filebased.EmailBackend")
EMAIL_FILE_PATH = os.environ.get("ANNULUS_EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = os.environ.get("ANNULUS_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("ANNULUS_EMAIL_PORT", "25"))
DEFAULT_FROM_EMAIL = os.environ.get("ANNULUS_FROM_EMAIL", "annulus@localhost")

# Links in e-mails are absolute, built from this URL (the address users open the site at).
# The demo sets it to the URL it serves; production must set it.
if _PRODUCTION and not os.environ.get("ANNULUS_SITE_URL"):
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("ANNULUS_SITE_URL must be set in production (ANNULUS_SECRET_KEY is set), "
                               "e.g. https://annulus.example.org")
ANNULUS_SITE_URL = os.environ.get("ANNULUS_SITE_URL", "http://127.0.0.1:8000").rstrip("/")

# The protocol file this installation runs (an amendment is loaded as a new version).
ANNULUS_PROTOCOL_FILE = os.environ.get("ANNULUS_PROTOCOL_FILE", str(BASE_DIR / "protocols" / "dlbp-admsc.yaml"))
# The 24-hour contact printed on every emergency letter when the protocol file names none
# (trial.emergency_contact), e.g. "Trial emergency line, +86 411 8363 5963".
ANNULUS_EMERGENCY_CONTACT = os.environ.get("ANNULUS_EMERGENCY_CONTACT", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["console"], "level": "ERROR"}},
}

VAR_DIR.mkdir(parents=True, exist_ok=True)
