import os

import pytest
import time_machine
from django.conf import settings
from django_q import tasks as q_tasks
from django_q.conf import Conf
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from accounts.tests import factories
from coop import roles

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
hypothesis_settings.register_profile("ci-postgres", hypothesis_settings.get_profile("ci"), max_examples=100)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


# --- Shared test data (accounts/tests/factories.py): the policy, a user per role, the task queue,
# the clock (README.md, "Tests share one set of test data") ------------------------------------


@pytest.fixture
def policy(request, db):
    """The policy version in force from 2026-01-01, with the model's neutral defaults unless the
    test, its class or its module is marked `@pytest.mark.policy("B", returned_payment_fee=...)`
    (factories.policy_marked)."""
    return factories.policy_marked(request.node)


@pytest.fixture
def clerk(db):
    return factories.staff(roles.CLERK, "clerk", first_name="Cleo", last_name="Clark")


@pytest.fixture
def manager(db):
    return factories.staff(roles.MANAGER, "manager", first_name="Mona", last_name="Manning")


@pytest.fixture
def auditor(db):
    return factories.staff(roles.AUDITOR, "auditor", first_name="Audra", last_name="Ives")


@pytest.fixture
def superuser(db):
    return factories.superuser()


@pytest.fixture
def admin_client(client, superuser):
    """A client signed in as the superuser."""
    client.force_login(superuser)
    return client


@pytest.fixture
def manager_client(client, manager):
    client.force_login(manager)
    return client


@pytest.fixture(autouse=True)
def frozen(request):
    """The clock stands still (time-machine, tick=False) at the instant of the closest
    `@pytest.mark.frozen(instant)` on the test, its class or its module, fixtures included."""
    mark = request.node.get_closest_marker("frozen")
    if mark is None:
        yield
        return
    with time_machine.travel(mark.args[0], tick=False):
        yield


@pytest.fixture
def queued(monkeypatch):
    """What would be enqueued on the cluster, as (func, args, kwargs), recorded instead of run."""
    calls = []
    monkeypatch.setattr(
        q_tasks, "async_task", lambda func, *args, **kwargs: calls.append((func, args, kwargs))
    )
    return calls


@pytest.fixture
def q_sync(monkeypatch):
    """django-q2 runs each enqueued task at once, in this process (its `sync` mode). Conf is read
    when django_q is imported, so override_settings(Q_CLUSTER=...) would not reach it."""
    monkeypatch.setattr(Conf, "SYNC", True)


# --- end of shared test data ---------------------------------------------------------------------


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


class _Delivery:
    """A coop.events delivery waiting for the emulated commit (see events_after_commit)."""

    def __init__(self, deliver):
        self.deliver = deliver

    def __call__(self):
        self.deliver()


@pytest.fixture(autouse=True)
def events_after_commit(monkeypatch):
    """coop.events delivers after the transaction that published commits. A `django_db` test runs
    inside the test case's own atomic blocks, which are rolled back and never commit, so without
    this no event would be delivered and no payment would queue its receipt. Here, for coop.events
    deliveries only, a commit is emulated where production would have one:

    - published while only the test case's blocks are open (a service called from the test with no
      transaction of its own): delivered at once, as in production outside any transaction;
    - published inside the code under test's own atomic block: delivered when the outermost such
      block ends without an error and without being marked for rollback (its "commit"), dropped
      when it rolls back (Django's savepoint rollback already discards the callbacks registered
      inside an inner block that rolled back).

    Other on_commit callbacks (the send tasks notifications enqueues) are left as Django leaves
    them. Transactional tests (`transaction=True`: no test-case blocks) get the real on_commit.
    A test that opens `transaction.atomic()` itself is the code under test there: its events are
    delivered when its block ends. The test case's blocks are told apart by Django's
    `Atomic._from_testcase` (set by TestCase on the blocks it opens; Django 5.2)."""
    from django.db import transaction
    from django.db.transaction import Atomic

    from coop import events

    real_after_commit, real_exit = events._after_commit, Atomic.__exit__

    def test_case_blocks_only(connection) -> bool:
        return all(block._from_testcase for block in connection.atomic_blocks)

    def after_commit(delivery):
        connection = transaction.get_connection()
        if not any(block._from_testcase for block in connection.atomic_blocks):
            real_after_commit(delivery)  # a transactional test: Django commits for real
        elif test_case_blocks_only(connection):
            delivery()
        else:
            transaction.on_commit(_Delivery(delivery))

    def exit_and_deliver(self, exc_type, exc_value, traceback):
        connection = transaction.get_connection(self.using)
        committing = exc_type is None and not connection.needs_rollback
        try:
            result = real_exit(self, exc_type, exc_value, traceback)
        except BaseException:
            committing = False
            raise
        finally:
            if not self._from_testcase and connection.atomic_blocks and test_case_blocks_only(connection):
                ours = [entry for entry in connection.run_on_commit if isinstance(entry[1], _Delivery)]
                connection.run_on_commit = [
                    entry for entry in connection.run_on_commit if not isinstance(entry[1], _Delivery)
                ]
                if committing:
                    for _sids, delivery, _robust in ours:
                        delivery()
        return result

    monkeypatch.setattr(events, "_after_commit", after_commit)
    monkeypatch.setattr(Atomic, "__exit__", exit_and_deliver)
