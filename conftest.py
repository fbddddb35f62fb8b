import os

import pytest
from django.conf import settings
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

# Hypothesis: a quick profile while developing, 500 examples in CI (HYPOTHESIS_PROFILE=ci), and
# 100 in CI's PostgreSQL pass (ci-postgres): the properties are about the money logic, which the
# SQLite pass explores with 500 examples; the PostgreSQL pass proves the database's own guards
# (triggers, commit-time checks) hold under the same kind of sequences, at a fifth of the time
# (the 500-example state machine alone took about 15 of the PostgreSQL pass's 23 minutes).
_slow_ok = [HealthCheck.too_slow, HealthCheck.data_too_large]
hypothesis_settings.register_profile("dev", max_examples=40, deadline=None, suppress_health_check=_slow_ok)
hypothesis_settings.register_profile(
    "ci",
    max_examples=500,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=_slow_ok,
    derandomize=True,
    database=None,
)
hypothesis_settings.register_profile(
    "ci-postgres", hypothesis_settings.get_profile("ci"), max_examples=100
)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` need PostgreSQL features (row locks, triggers, concurrency)."""
    if settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def _flush_as_superuser_with_triggers_off():
    """Django empties the database between transactional tests with one TRUNCATE of every table,
    which the append-only tables refuse (billing/migrations/0013). The tests connect as a
    superuser, which may turn the session's triggers off; the application's own role may not
    (README.md, "Database roles")."""
    from django.db.backends.postgresql.operations import DatabaseOperations

    sql_flush = DatabaseOperations.sql_flush

    def flush_with_triggers_off(self, style, tables, **kwargs):
        statements = sql_flush(self, style, tables, **kwargs)
        if not statements:
            return statements
        # Django runs these in one database transaction: SET LOCAL ends with it.
        return [
            "SET LOCAL session_replication_role = replica",
            *statements,
            "SET LOCAL session_replication_role = DEFAULT",
        ]

    DatabaseOperations.sql_flush = flush_with_triggers_off


_flush_as_superuser_with_triggers_off()
