"""Stagegate settings: one module, every deployment-specific value from an env var.

With no env vars at all it runs embedded: SQLite under var/, Celery tasks eager,
artifacts in var/artifacts. DATABASE_URL, CELERY_BROKER_URL and
STAGEGATE_ARTIFACTS_S3_BUCKET switch it to PostgreSQL, Redis and S3.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


VAR_DIR = Path(env_str("STAGEGATE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        return key
    # Embedded run: keep a generated key under var/ so sessions survive restarts.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")
# Behind a proxy that rewrites Host: take the host (for links in pages and API answers) from X-Forwarded-Host.
USE_X_FORWARDED_HOST = env_bool("DJANGO_USE_X_FORWARDED_HOST", False)

# Behind a TLS-terminating proxy: set DJANGO_SECURE=true (and the proxy must send X-Forwarded-Proto).
SECURE = env_bool("DJANGO_SECURE", False)
if SECURE:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^health$"]
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Content-Security-Policy on every page (Django's own middleware): scripts only from our static files
# (no inline script, no eval: htmx runs with allowEval off, see templates/base.html), styles from our
# files plus the nonce Django admin's one inline <style> carries; style="" attributes stay allowed
# (style-src-attr): ~70 of them set widths and spacing in the templates, none drives behaviour.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.NONCE],
    "style-src-attr": [CSP.UNSAFE_INLINE],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "guardian",
    "axes",
    "core",
    "tracking",
    "registry",
    "approvals",
    "monitoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Links in pages and guiding errors use the address the user reached (core/links.py).
    "core.links.RequestLinksMiddleware",
    # Last: turns a sign-in refused for a lockout into core.auth.lockout_response.
    "axes.middleware.AxesMiddleware",
]

# The JSON API's own, shorter chain (core/wsgi.py): security headers, and the session so a signed-in
# browser reads the API; API views authenticate, are CSRF-exempt and answer JSON themselves.
API_MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "core.links.RequestLinksMiddleware",
]

# Larger request bodies get 413 RESOURCE_EXHAUSTED on the API. MLflow's server takes JSON bodies with
# up to a 16 MB dataset profile (Django's default stops at 2.5 MB): 32 MB by default.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("STAGEGATE_MAX_REQUEST_BYTES", 32 * 1024 * 1024)

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
# The MLflow API paths have no trailing slash; never redirect them.
APPEND_SLASH = False
# A 16 KiB query string (what MLflow's server reads) holds up to ~4000 fields; Django's default is 1000.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10000

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
                "django.template.context_processors.csp",
                "core.context_processors.navigation",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60))}
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        # The same backend, without a health-check round trip for a connection that just answered (core/db).
        DATABASES["default"]["ENGINE"] = "core.db.postgresql"
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "stagegate.sqlite3",
            "OPTIONS": {
                # Writers queue instead of failing with "database is locked".
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"].setdefault("TEST", {})["NAME"] = str(VAR_DIR / "test.sqlite3")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out user or address before any password is checked (core/auth.py).
    "core.auth.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
    # OpenID Connect sign-in (core/oidc.py); it authenticates only the SSO callback, and only when an issuer is set.
    "core.oidc.OidcBackend",
]
# Single sign-on with OpenID Connect (core/oidc.py), on when an issuer is set. The endpoints come from
# <issuer>/.well-known/openid-configuration, read on first use and cached.
STAGEGATE_OIDC_ISSUER = env_str("STAGEGATE_OIDC_ISSUER").strip().rstrip("/")
STAGEGATE_OIDC_CLIENT_ID = env_str("STAGEGATE_OIDC_CLIENT_ID")
STAGEGATE_OIDC_CLIENT_SECRET = env_str("STAGEGATE_OIDC_CLIENT_SECRET")
STAGEGATE_OIDC_NAME = env_str("STAGEGATE_OIDC_NAME", "SSO")
STAGEGATE_OIDC_SCOPES = env_str("STAGEGATE_OIDC_SCOPES", "openid email profile")
STAGEGATE_OIDC_USERNAME_CLAIM = env_str("STAGEGATE_OIDC_USERNAME_CLAIM", "preferred_username")
# Empty: sign-ins leave the users' groups alone (groups managed in Stagegate's admin instead).
STAGEGATE_OIDC_GROUPS_CLAIM = env_str("STAGEGATE_OIDC_GROUPS_CLAIM", "groups")
STAGEGATE_OIDC_ONLY = env_bool("STAGEGATE_OIDC_ONLY", False)
STAGEGATE_OIDC_LINK_EXISTING = env_bool("STAGEGATE_OIDC_LINK_EXISTING", False)
if STAGEGATE_OIDC_ISSUER and not (STAGEGATE_OIDC_CLIENT_ID and STAGEGATE_OIDC_CLIENT_SECRET):
    raise ImproperlyConfigured("STAGEGATE_OIDC_ISSUER is set: STAGEGATE_OIDC_CLIENT_ID and STAGEGATE_OIDC_CLIENT_SECRET are needed too")
if STAGEGATE_OIDC_ONLY and not STAGEGATE_OIDC_ISSUER:
    raise ImproperlyConfigured("STAGEGATE_OIDC_ONLY=true needs STAGEGATE_OIDC_ISSUER (nobody could sign in)")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Throttled password guessing (django-axes; core/auth.py): the sign-in form, the admin's login and HTTP
# Basic on the API lock a user name OR a client address after this many failures, for this long after
# the last one. API tokens are never locked out.
AXES_FAILURE_LIMIT = env_int("STAGEGATE_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("STAGEGATE_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# Attempts refused during a lockout do not extend it: it ends a cool-off after the failure that started it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "core.auth.lockout_response"
AXES_CLIENT_IP_CALLABLE = "core.auth.client_ip"
AXES_VERBOSE = False
# Reverse proxies in front of the server that append to X-Forwarded-For (0: the address is REMOTE_ADDR).
STAGEGATE_TRUSTED_PROXIES = env_int("STAGEGATE_TRUSTED_PROXIES", 0)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "stagegate",
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STAGEGATE_STATIC_ROOT", str(VAR_DIR / "staticfiles")))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)

# Artifacts: a local folder by default, any S3-compatible store when a bucket is named.
ARTIFACT_ROOT = Path(env_str("STAGEGATE_ARTIFACT_ROOT", str(VAR_DIR / "artifacts")))
ARTIFACTS_S3_BUCKET = env_str("STAGEGATE_ARTIFACTS_S3_BUCKET")
if ARTIFACTS_S3_BUCKET:
    from boto3.s3.transfer import TransferConfig

    # Uploads stream in 8 MB parts with at most two parts in memory: boto3 buffers ten by default, more
    # than a 64 MB upload (s3transfer's knob, not among boto3's arguments). Copies use the same part size.
    _S3_TRANSFER = TransferConfig(multipart_chunksize=8 * 1024 * 1024, max_concurrency=2)
    _S3_TRANSFER.max_in_memory_upload_chunks = 2
    ARTIFACT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": ARTIFACTS_S3_BUCKET,
            "location": env_str("STAGEGATE_ARTIFACTS_S3_PREFIX"),
            "endpoint_url": env_str("STAGEGATE_ARTIFACTS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("STAGEGATE_ARTIFACTS_S3_REGION") or None,
            "access_key": env_str("AWS_ACCESS_KEY_ID") or None,
            "secret_key": env_str("AWS_SECRET_ACCESS_KEY") or None,
            "file_overwrite": True,
            "default_acl": None,
            "querystring_auth": False,
            "transfer_config": _S3_TRANSFER,
        },
    }
else:
    ARTIFACT_STORAGE = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(ARTIFACT_ROOT), "allow_overwrite": True},
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    "artifacts": ARTIFACT_STORAGE,
}

# Celery: eager in the embedded run, a real broker when CELERY_BROKER_URL is set.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    # A publisher whose broker went away gives up after a few quick reconnects instead of retrying
    # forever: a request never hangs on a dead Redis, and the outbox sweeps re-send what was not sent.
    "max_retries": env_int("CELERY_PUBLISH_MAX_RETRIES", 3),
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "stagegate")
# Model evaluations (approvals.evaluation) run on a queue of their own: serve it with a worker
# started with `-Q evaluation` (or add it to the main worker's queues).
STAGEGATE_EVALUATION_QUEUE = env_str("STAGEGATE_EVALUATION_QUEUE", "evaluation")
CELERY_TASK_ROUTES = {f"approvals.tasks.{name}": {"queue": STAGEGATE_EVALUATION_QUEUE}
                      for name in ("evaluate_ready_version", "run_evaluation")}
STAGEGATE_EVALUATION_TIMEOUT = env_int("STAGEGATE_EVALUATION_TIMEOUT", 300)  # seconds per evaluation subprocess
STAGEGATE_EVALUATION_MEMORY_MB = env_int("STAGEGATE_EVALUATION_MEMORY_MB", 4096)  # its address-space limit
STAGEGATE_EVALUATION_MAX_DATASET_MB = env_int("STAGEGATE_EVALUATION_MAX_DATASET_MB", 100)
STAGEGATE_EVALUATION_SCRATCH = Path(env_str("STAGEGATE_EVALUATION_SCRATCH", str(VAR_DIR / "evaluation")))
STAGEGATE_MODEL_SIGNATURE_FILE = env_str("STAGEGATE_MODEL_SIGNATURE_FILE", "model.sig")
STAGEGATE_SIGSTORE_TRUST_CONFIG = env_str("STAGEGATE_SIGSTORE_TRUST_CONFIG", "")
CELERY_BEAT_SCHEDULE = {}
# Registry outbox and registration sweeps: re-enqueue what the broker lost.
CELERY_BEAT_SCHEDULE["registry-sweep-events"] = {"task": "registry.tasks.sweep_events", "schedule": 60.0}
CELERY_BEAT_SCHEDULE["registry-sweep-registrations"] = {"task": "registry.tasks.sweep_pending_registrations", "schedule": 60.0}

# Monitoring: webhook delivery, e-mail digests and their sweep (monitoring app).
CELERY_BEAT_SCHEDULE["monitoring-sweep"] = {"task": "monitoring.tasks.sweep", "schedule": 30.0}
# Private/loopback webhook targets are refused unless listed here (hosts or CIDRs, comma-separated).
STAGEGATE_WEBHOOK_ALLOWED_HOSTS = env_list("STAGEGATE_WEBHOOK_ALLOWED_HOSTS")
# Fernet key material for webhook secrets at rest (defaults to SECRET_KEY).
STAGEGATE_WEBHOOK_SECRET_KEY = env_str("STAGEGATE_WEBHOOK_SECRET_KEY")
STAGEGATE_WEBHOOK_RETRY_HOURS = env_int("STAGEGATE_WEBHOOK_RETRY_HOURS", 24)
STAGEGATE_WEBHOOK_TIMEOUT = env_int("STAGEGATE_WEBHOOK_TIMEOUT", 10)
STAGEGATE_WEBHOOK_LEASE_GRACE_SECONDS = env_int("STAGEGATE_WEBHOOK_LEASE_GRACE_SECONDS", 15)
STAGEGATE_WEBHOOK_BACKOFF_SECONDS = env_int("STAGEGATE_WEBHOOK_BACKOFF_SECONDS", 10)
STAGEGATE_WEBHOOK_BACKOFF_MAX_SECONDS = env_int("STAGEGATE_WEBHOOK_BACKOFF_MAX_SECONDS", 3600)
STAGEGATE_WEBHOOK_FAILING_AFTER = env_int("STAGEGATE_WEBHOOK_FAILING_AFTER", 5)
STAGEGATE_EMAIL_BATCH_SECONDS = env_int("STAGEGATE_EMAIL_BATCH_SECONDS", 60)
STAGEGATE_MONITOR_SWEEP_AGE_SECONDS = env_int("STAGEGATE_MONITOR_SWEEP_AGE_SECONDS", 60)

# Mail: the console in the embedded run, SMTP when EMAIL_BACKEND says so.
EMAIL_BACKEND_PATH = env_str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
_mail_options = {}
if EMAIL_BACKEND_PATH.endswith("smtp.EmailBackend"):
    _mail_options = {
        "host": env_str("EMAIL_HOST", "localhost"),
        "port": env_int("EMAIL_PORT", 25),
        "username": env_str("EMAIL_HOST_USER") or None,
        "password": env_str("EMAIL_HOST_PASSWORD") or None,
        "use_tls": env_bool("EMAIL_USE_TLS", False),
        "timeout": env_int("EMAIL_TIMEOUT", 30),
    }
MAILERS = {"default": {"BACKEND": EMAIL_BACKEND_PATH, "OPTIONS": _mail_options}}
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "stagegate@localhost")

# Stagegate's own knobs.
STAGEGATE_ADMIN_USER = env_str("STAGEGATE_ADMIN_USER", "admin")
STAGEGATE_ADMIN_PASSWORD = env_str("STAGEGATE_ADMIN_PASSWORD")
STAGEGATE_ADMIN_EMAIL = env_str("STAGEGATE_ADMIN_EMAIL", "admin@localhost")
# How long a verified HTTP Basic credential is trusted before its hash is checked again.
STAGEGATE_BASIC_AUTH_CACHE_SECONDS = env_int("STAGEGATE_BASIC_AUTH_CACHE_SECONDS", 300)
# PostgreSQL: no health-check round trip for a connection that answered this recently (core/db; 0 = check every request).
STAGEGATE_DB_ALIVE_BYPASS_MS = env_int("STAGEGATE_DB_ALIVE_BYPASS_MS", 1000)
# After a registry write commits, its process asks for the background run (event dispatch, registration)
# this much later, together with the other writes of that moment (registry/events.py; 0 = at once).
STAGEGATE_PUBLISH_DELAY_MS = env_int("STAGEGATE_PUBLISH_DELAY_MS", 20)
# The public address for links in mails (no request to take a host from); pages and API answers
# link to the host the user reached (core/links.py). `make run` derives it from PORT.
STAGEGATE_BASE_URL = env_str("STAGEGATE_BASE_URL", f"http://127.0.0.1:{env_int('PORT', 8000)}")
# The header's review-inbox count: pending requests the signed-in user may decide.
STAGEGATE_REVIEW_INBOX_COUNTER = "approvals.views.inbox_count"

# Governance (core.permissions). The level every signed-in user has on registered models and
# experiments they were not granted: empty = none (private unless shared), CAN_READ for an open
# organisation. The shared "Default" experiment (id 0) has its own floor. With RESTRICT_*_CREATION
# only superusers and users/groups given Django's `registry.add_registeredmodel` /
# `tracking.add_experiment` permission may create them (Databricks' CAN_CREATE_REGISTERED_MODEL).
_LEVELS = {"", "NONE", "CAN_READ", "CAN_EDIT", "CAN_MANAGE_STAGING_VERSIONS", "CAN_MANAGE_PRODUCTION_VERSIONS", "CAN_MANAGE"}
STAGEGATE_DEFAULT_PERMISSION = env_str("STAGEGATE_DEFAULT_PERMISSION").strip().upper()
STAGEGATE_DEFAULT_EXPERIMENT_PERMISSION = env_str("STAGEGATE_DEFAULT_EXPERIMENT_PERMISSION", "CAN_EDIT").strip().upper()
for _name in ("STAGEGATE_DEFAULT_PERMISSION", "STAGEGATE_DEFAULT_EXPERIMENT_PERMISSION"):
    if globals()[_name] not in _LEVELS:
        raise ImproperlyConfigured(f"{_name}={globals()[_name]!r} is not a permission level ({', '.join(sorted(_LEVELS - {''}))})")
STAGEGATE_RESTRICT_MODEL_CREATION = env_bool("STAGEGATE_RESTRICT_MODEL_CREATION", False)
STAGEGATE_RESTRICT_EXPERIMENT_CREATION = env_bool("STAGEGATE_RESTRICT_EXPERIMENT_CREATION", False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
    "loggers": {
        "stagegate": {"level": env_str("STAGEGATE_LOG_LEVEL", "INFO")},
    },
}

# django-guardian: no anonymous user row; pages are private by default.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False
