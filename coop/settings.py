"""Settings for the cooperative back office.

Everything that differs between machines comes from the environment (or an optional `.env` file
beside manage.py), read through django-environ. `.env.example` documents every variable.
"""

import datetime
import os
import re
import zoneinfo
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")  # optional; real environment variables win
# A variable left empty (as in a copied .env.example) means "use the default", not "empty".
OUR_PREFIXES = ("DJANGO_", "DATABASE_", "REDIS_", "Q_", "COOP_", "EMAIL_", "PHONENUMBER_", "TWILIO_", "LOG_")
for _name in [k for k, v in os.environ.items() if v == "" and k.startswith(OUR_PREFIXES)]:
    del os.environ[_name]

DEV_SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"

DEBUG = env.bool("DJANGO_DEBUG", default=env.bool("COOP_DEBUG_DEFAULT", default=False))
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_DEBUG is off but DJANGO_SECRET_KEY is not set: refusing to start with the "
        "development secret key. Set DJANGO_SECRET_KEY to a long random value (for example "
        "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`), or set "
        "DJANGO_DEBUG=true on a development machine."
    )

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # The admin, with coop.admin_site.CoopAdminSite as `admin.site` (two-factor sign-in for
    # staff when DEBUG is off); every `admin.site.register` works as before.
    "coop.admin_config.CoopAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "phonenumber_field",
    "simple_history",
    "django_q",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "csp",
    "coop",
    "accounts",
    "meters",
    "billing",
    "notifications",
    # Last: the demo cooperative and the bench may import every app above; nothing imports them.
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # First, so that every response gets the Content-Security-Policy header, error pages too.
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): signed in with a code
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes requires: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "coop.urls"

TEMPLATES = [
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

WSGI_APPLICATION = "coop.wsgi.application"

# SQLite file by default; DATABASE_URL (postgres://user:pass@host:5432/name) switches to
# PostgreSQL, which is what production and the second CI pass use.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the django-q2 cluster share the file: WAL lets readers work beside a
    # writer, IMMEDIATE transactions take the write lock up front instead of failing halfway.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
# The cooperative's own zone: "yesterday", business days, disconnect windows and billing-cycle
# dates are all reckoned in it.
TIME_ZONE = env.str("COOP_TIME_ZONE", default="America/Chicago")
# Holidays come from the `holidays` package for this US state (observed days included).
COOP_HOLIDAY_STATE = env.str("COOP_HOLIDAY_STATE", default="WI")
# Holidays of that list the office works on anyway (names as the holidays package spells them).
COOP_HOLIDAYS_IGNORED = env.list("COOP_HOLIDAYS_IGNORED", default=[])
COOP_NAME = env.str("COOP_NAME", default="Demo Electric Cooperative")

# Phone numbers are parsed and validated for this region ("(715) 532-5524" -> +17155325524).
PHONENUMBER_DEFAULT_REGION = env.str("PHONENUMBER_DEFAULT_REGION", default="US")
PHONENUMBER_DB_FORMAT = "E164"
PHONENUMBER_DEFAULT_FORMAT = "NATIONAL"

STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")

LOGIN_URL = "admin:login"

# --- Sign-in: lockout, two-factor, sessions ---------------------------------------------------
# django-axes counts failed sign-ins per username *and* client address; at COOP_LOGIN_FAILURE_LIMIT
# that pair is locked out for COOP_LOGIN_COOLOFF_MINUTES (the right password is refused too) and
# sees the lockout page. Every attempt is recorded (axes' access attempts and access log). This
# covers every login that goes through django.contrib.auth.authenticate with a request: the admin
# now, the member pages when they exist. AxesBackend must come first.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("COOP_LOGIN_FAILURE_LIMIT", default=5)
_cooloff_minutes = env.int("COOP_LOGIN_COOLOFF_MINUTES", default=30)
AXES_COOLOFF_TIME = datetime.timedelta(minutes=_cooloff_minutes)
if AXES_FAILURE_LIMIT < 1 or _cooloff_minutes < 1:
    raise ImproperlyConfigured("COOP_LOGIN_FAILURE_LIMIT and COOP_LOGIN_COOLOFF_MINUTES must be at least 1.")
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True  # a successful sign-in starts the count again
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # one row per failed attempt, beside the running count
# Masked in axes' log lines and in the request data it keeps (the password always is). The username
# stays in the attempt's own column (a password typed into the username box does not reach a log).
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token", "csrfmiddlewaretoken"]
AXES_LOCKOUT_CALLABLE = "coop.admin_site.lockout_response"  # the lockout page, status 429
# Behind proxies the client's address is in X-Forwarded-For: COOP_TRUSTED_PROXIES says how many
# proxies in front of the app append to it (0: use the connection's address, REMOTE_ADDR). Entries
# further left than that are written by the client and are never trusted.
COOP_TRUSTED_PROXIES = env.int("COOP_TRUSTED_PROXIES", default=0)
if COOP_TRUSTED_PROXIES < 0:
    raise ImproperlyConfigured(f"COOP_TRUSTED_PROXIES={COOP_TRUSTED_PROXIES} must be 0 or more.")
AXES_CLIENT_IP_CALLABLE = "coop.admin_site.client_ip"
AXES_USERNAME_CALLABLE = "coop.admin_site.login_username"  # a card number typed there is stored masked

# Two-factor sign-in (django-otp, TOTP authenticator apps) for staff on the admin: required
# whenever DEBUG is off, with no switch to turn it off there. On a development machine it is off
# (the demo logins work with a password) unless COOP_STAFF_OTP_IN_DEBUG=true. Enrol a device with
# `manage.py otp_enrol USERNAME`; a superuser resets a lost one with `manage.py otp_reset`.
COOP_STAFF_OTP_REQUIRED = not DEBUG or env.bool("COOP_STAFF_OTP_IN_DEBUG", default=False)
OTP_TOTP_ISSUER = COOP_NAME  # the name authenticator apps show beside the code
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the admin never shows a device's secret key or QR code

# Staff sessions end after COOP_SESSION_IDLE_HOURS without a request (each request renews the
# session) and when the browser closes (the cookie has no expiry date).
COOP_SESSION_IDLE_HOURS = env.int("COOP_SESSION_IDLE_HOURS", default=8)
if not 1 <= COOP_SESSION_IDLE_HOURS <= 24:
    raise ImproperlyConfigured(f"COOP_SESSION_IDLE_HOURS={COOP_SESSION_IDLE_HOURS} must be between 1 and 24.")
SESSION_COOKIE_AGE = COOP_SESSION_IDLE_HOURS * 3600
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# Background work: django-q2. The ORM broker needs nothing but the database; set REDIS_URL to use
# Redis, which several clusters on several machines can share. `timeout` must stay below `retry`
# (otherwise a slow task is handed to a second worker while the first still runs) and
# `max_attempts` is finite so a poison task stops being retried.
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": "coop",
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=600),
    "retry": env.int("Q_RETRY", default=720),
    "max_attempts": env.int("Q_MAX_ATTEMPTS", default=5),
    "catch_up": False,
    "save_limit": 1000,
    "label": "Background tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
if not 0 < Q_CLUSTER["timeout"] < Q_CLUSTER["retry"] or Q_CLUSTER["max_attempts"] < 1:
    raise ImproperlyConfigured(
        "Q_TIMEOUT must be positive and below Q_RETRY, and Q_MAX_ATTEMPTS at least 1 "
        f"(got timeout={Q_CLUSTER['timeout']}, retry={Q_CLUSTER['retry']}, "
        f"max_attempts={Q_CLUSTER['max_attempts']})."
    )


def _local_time_of_day(name: str, default: str) -> datetime.time:
    """A setting naming a wall-clock time (HH:MM, 24-hour) in the cooperative's zone, for a daily
    schedule. A time the zone's clocks skip (02:30 on the spring-forward night in Chicago) is
    refused: django-q2 moves a daily schedule on by a day and corrects it by the change of UTC
    offset, so a schedule started at a time that does not exist would run an hour early ever after.
    """
    value = env.str(name, default=default).strip()
    match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)", value)
    if not match:
        raise ImproperlyConfigured(
            f"{name}={value!r} is not a time of day: write it as HH:MM on the 24-hour clock, "
            f"for example {default} (it is read in COOP_TIME_ZONE, {TIME_ZONE})."
        )
    at = datetime.time(int(match[1]), int(match[2]))
    zone, day = zoneinfo.ZoneInfo(TIME_ZONE), datetime.date(2026, 1, 1)
    for _ in range(366):  # a year holds both changes of clock
        local = datetime.datetime.combine(day, at, tzinfo=zone)
        if local.astimezone(datetime.UTC).astimezone(zone).time() != at:
            raise ImproperlyConfigured(
                f"{name}={value} does not exist every day in {TIME_ZONE}: the clocks skip it when "
                f"daylight saving time starts (on {day:%Y-%m-%d}). Choose a time outside the hour "
                "in which the clocks change."
            )
        day += datetime.timedelta(days=1)
    return at


# Schedules (coop/schedules.py writes them to django-q2's Schedule table after every `migrate`).
# Local times in the cooperative's zone, kept across daylight-saving changes. The daily prepaid
# run starts once the day's meter reads have arrived; the inactive sweep after the run has charged
# the last day.
COOP_DAILY_RUN_AT = _local_time_of_day("COOP_DAILY_RUN_AT", "06:00")
COOP_INACTIVE_SWEEP_AT = _local_time_of_day("COOP_INACTIVE_SWEEP_AT", "07:00")
# How often the disconnect task looks for accounts to disconnect (it checks the policy's window
# and grace days itself); at most 60 so that a one-hour window (program E) is never missed.
COOP_DISCONNECT_EVERY_MINUTES = env.int("COOP_DISCONNECT_EVERY_MINUTES", default=15)
if not 1 <= COOP_DISCONNECT_EVERY_MINUTES <= 60:
    raise ImproperlyConfigured(
        f"COOP_DISCONNECT_EVERY_MINUTES={COOP_DISCONNECT_EVERY_MINUTES} must be between 1 and 60: "
        "the disconnect window can be as short as an hour (10:00-11:00 under program E)."
    )

# Chunks of the daily prepaid run processed at a time on PostgreSQL, each on its own database
# connection (billing/daily.py): about one per CPU core the database server can spare.
COOP_DAILY_RUN_WORKERS = env.int("COOP_DAILY_RUN_WORKERS", default=1)
if not 1 <= COOP_DAILY_RUN_WORKERS <= 32:
    raise ImproperlyConfigured(f"COOP_DAILY_RUN_WORKERS={COOP_DAILY_RUN_WORKERS} must be between 1 and 32.")

# The head-end that opens and closes meters' service switches (meters/headend.py). Only the
# simulated AMI head-end and manual field orders exist so far; these make the simulator fail for
# testing and tune retries of orders it did not take.
HEADEND_SIMULATOR_FAIL = env.str("HEADEND_SIMULATOR_FAIL", default="")
HEADEND_SIMULATOR_FAIL_PERMANENT = env.str("HEADEND_SIMULATOR_FAIL_PERMANENT", default="")
HEADEND_MAX_ATTEMPTS = env.int("HEADEND_MAX_ATTEMPTS", default=5)
HEADEND_RETRY_BASE_SECONDS = env.int("HEADEND_RETRY_BASE_SECONDS", default=60)
HEADEND_RETRY_MAX_SECONDS = env.int("HEADEND_RETRY_MAX_SECONDS", default=3600)
HEADEND_SEND_SWEEP_SECONDS = env.int("HEADEND_SEND_SWEEP_SECONDS", default=60)
# Seconds the simulator waits before confirming an order (tests and demos of a slow head-end).
HEADEND_SIMULATOR_CONFIRM_DELAY_SECONDS = env.float("HEADEND_SIMULATOR_CONFIRM_DELAY_SECONDS", default=0.0)

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="billing@coop.example")
# Seconds before an unanswering SMTP server counts as a transient failure (retried later).
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)

# Notices by SMS (Twilio) and email (notifications/). Without the Twilio settings, texts go to the
# console (COOP_SMS_BACKEND=file: to files) and show in the message log as not sent.
TWILIO_ACCOUNT_SID = env.str("TWILIO_ACCOUNT_SID", default="")
TWILIO_AUTH_TOKEN = env.str("TWILIO_AUTH_TOKEN", default="")
TWILIO_MESSAGING_SERVICE_SID = env.str("TWILIO_MESSAGING_SERVICE_SID", default="")  # wins over FROM
TWILIO_FROM_NUMBER = env.str("TWILIO_FROM_NUMBER", default="")
# The public https origin Twilio calls (status callbacks are sent there; signatures are checked
# against it, so they validate behind a TLS-terminating proxy whatever Host it forwards).
TWILIO_WEBHOOK_BASE_URL = env.str("TWILIO_WEBHOOK_BASE_URL", default="")
TWILIO_TIMEOUT = env.float("TWILIO_TIMEOUT", default=15.0)
# Answer STOP/START/HELP ourselves; false when Twilio's own opt-out handling already answers them.
TWILIO_KEYWORD_REPLIES = env.bool("TWILIO_KEYWORD_REPLIES", default=True)
COOP_SMS_BACKEND = env.str("COOP_SMS_BACKEND", default="")  # twilio, console, file; empty: auto
COOP_SMS_FILE_PATH = env.path("COOP_SMS_FILE_PATH", default=BASE_DIR / "sent-sms")
COOP_SMS_NAME = env.str("COOP_SMS_NAME", default=COOP_NAME)  # signs every text: keep it short
COOP_HELP_PHONE = env.str("COOP_HELP_PHONE", default="")
COOP_PAY_URL = env.str("COOP_PAY_URL", default="")
COOP_NOTIFY_MAX_ATTEMPTS = env.int("COOP_NOTIFY_MAX_ATTEMPTS", default=6)
COOP_NOTIFY_BATCH_SIZE = env.int("COOP_NOTIFY_BATCH_SIZE", default=200)  # messages per send task

# Behind a TLS-terminating proxy (nginx, a load balancer) that sets X-Forwarded-Proto.
if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Production hardening: on whenever DEBUG is off, each overridable.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy on every response (django-csp): only this site's own scripts, styles,
# images and fonts; no inline script, no plugins, no framing, forms post only here.
# 'unsafe-inline' for styles only: the admin's and our panels' templates carry style attributes.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # No card number reaches a log: the one handler masks anything card-like in every record
    # (coop/validators.py), and Django's own loggers (django.request logs each 500 with its URL,
    # django.server each request line) and django-q2's (a failed task with its arguments) use it
    # instead of their unfiltered defaults.
    "filters": {"no_card_numbers": {"()": "coop.validators.CardNumberLogFilter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["no_card_numbers"]}},
    "loggers": {
        name: {"handlers": ["console"], "level": "INFO", "propagate": False}
        for name in ("django", "django.server", "django-q")
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}
