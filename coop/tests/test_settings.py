"""The settings refuse unsafe production starts and pass Django's deployment checklist."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]


def run_python(code: str, **env_overrides) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "COOP_DEBUG", "REDIS_URL"))}
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, *code.split("\0")] if "\0" in code else [sys.executable, "-c", code],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


SETUP = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='coop.settings'; django.setup(); "


def test_production_refuses_to_start_with_the_development_secret_key():
    result = run_python(SETUP + "print('started')", DJANGO_DEBUG="false")
    assert result.returncode != 0
    assert "started" not in result.stdout
    assert "refusing to start with the development secret key" in result.stderr


def test_production_with_real_secrets_passes_the_deployment_checklist():
    result = run_python(
        "manage.py\0check\0--deploy\0--fail-level\0WARNING",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="billing.coop.example",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_the_task_cluster_uses_the_orm_broker_by_default_and_redis_when_configured():
    code = SETUP + "from django.conf import settings as s; print(sorted(s.Q_CLUSTER))"
    default = run_python(code, COOP_DEBUG_DEFAULT="true")
    assert "'orm'" in default.stdout and "'redis'" not in default.stdout, default.stderr
    with_redis = run_python(code, REDIS_URL="redis://127.0.0.1:6379/3", COOP_DEBUG_DEFAULT="true")
    assert "'redis'" in with_redis.stdout and "'orm'" not in with_redis.stdout, with_redis.stderr


def test_a_cluster_timeout_at_or_above_retry_is_refused():
    result = run_python(SETUP, Q_TIMEOUT="900", Q_RETRY="600", COOP_DEBUG_DEFAULT="true")
    assert result.returncode != 0
    assert "Q_TIMEOUT must be positive and below Q_RETRY" in result.stderr


def test_cluster_timeout_is_below_retry_and_attempts_are_finite(settings):
    q = settings.Q_CLUSTER
    assert 0 < q["timeout"] < q["retry"]
    assert 1 <= q["max_attempts"] < 100


@pytest.mark.parametrize("url", ["sqlite:////tmp/x.sqlite3", "postgres://u:p@db.example:5432/coop"])
def test_database_url_chooses_the_database(url):
    result = run_python(
        SETUP + "from django.conf import settings as s; print(s.DATABASES['default']['ENGINE'])",
        DATABASE_URL=url,
        COOP_DEBUG_DEFAULT="true",
    )
    expected = "sqlite3" if url.startswith("sqlite") else "postgresql"
    assert result.stdout.strip().endswith(expected), result.stderr
