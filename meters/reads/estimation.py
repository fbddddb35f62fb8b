"""Estimating the reads a meter should have and has none (the daily run's first step)."""

import datetime

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Account
from meters.models import MeterInstallation, MeterRead
from meters.reads._common import _READS, ACTUAL, ESTIMATED, _milli_sql


@transaction.atomic
def reads_estimate_missing(*, day: datetime.date) -> int:
    """Estimate the read of every meter that should have one for local `day` and has none.

    Which meters: installed on `day` (installed_on <= day, and not removed before it) at a location
    whose account is active or disconnected (its status now), with no read at all for `day`.

    A meter whose account is disconnected (its switch open) is estimated at 0 kWh: it should not
    be charged a guess of the usage it cannot have.

    Otherwise the method: the average of the meter's actual reads on the same weekday of the
    previous four weeks (day - 7, - 14, - 21, - 28), of those days that have one; if none has, the
    average of its
    actual reads over the previous seven days (day - 1 ... day - 7); if there is none of those
    either, 0. Estimated reads never feed an estimate, so an outage does not carry one guess into
    the next. The average is rounded half up to 0.001 kWh, in integer watt-hours so that SQLite and
    PostgreSQL round alike.

    One INSERT ... SELECT whatever the number of meters, and idempotent: a meter that has a read for
    the day (an earlier estimate included) is left alone, so a second call adds nothing. Returns
    the number of estimates made.
    """
    if isinstance(day, datetime.datetime) or not isinstance(day, datetime.date):
        raise TypeError(f"day must be a local date of the cooperative, not {day!r}")
    ops = connection.ops

    def d(n: int):
        return ops.adapt_datefield_value(day - datetime.timedelta(days=n))

    installations = MeterInstallation._meta.db_table
    accounts = Account._meta.db_table
    stored = _milli_sql("kwh")

    def average(sums: str) -> str:
        # Rounded half up: (2 * sum + count) div (2 * count), all whole numbers (sums are >= 0).
        return f"({sums}.wh * 2 + {sums}.n) / ({sums}.n * 2)"

    sql = f"""
        INSERT INTO {_READS}
            (meter_id, day, kwh, register, quality, source, source_name, estimated_kwh, received_at)
        SELECT t.meter_id, %s,
               CASE WHEN t.serving = 0 THEN 0
                    WHEN w.n > 0 THEN {average("w")} WHEN l.n > 0 THEN {average("l")} ELSE 0 END / 1000.0,
               NULL, '{ESTIMATED}', '{MeterRead.Source.ESTIMATE.value}', '', NULL, %s
        FROM (
            SELECT i.meter_id, MAX(CASE WHEN a.status = %s THEN 1 ELSE 0 END) AS serving
            FROM {installations} i
            JOIN {accounts} a ON a.location_id = i.location_id AND a.status IN (%s, %s)
            WHERE i.installed_on <= %s AND (i.removed_on IS NULL OR i.removed_on >= %s)
              AND NOT EXISTS (SELECT 1 FROM {_READS} x WHERE x.meter_id = i.meter_id AND x.day = %s)
            GROUP BY i.meter_id
        ) t
        LEFT JOIN (
            SELECT meter_id, CAST(SUM({stored}) AS BIGINT) AS wh, COUNT(*) AS n FROM {_READS}
            WHERE quality = '{ACTUAL}' AND day IN (%s, %s, %s, %s) GROUP BY meter_id
        ) w ON w.meter_id = t.meter_id
        LEFT JOIN (
            SELECT meter_id, CAST(SUM({stored}) AS BIGINT) AS wh, COUNT(*) AS n FROM {_READS}
            WHERE quality = '{ACTUAL}' AND day BETWEEN %s AND %s GROUP BY meter_id
        ) l ON l.meter_id = t.meter_id
        WHERE TRUE
        ON CONFLICT (meter_id, day) DO NOTHING
    """
    params = [
        d(0),
        ops.adapt_datetimefield_value(timezone.now()),
        Account.Status.ACTIVE.value,
        Account.Status.ACTIVE.value,
        Account.Status.DISCONNECTED.value,
        d(0),
        d(0),
        d(0),
        d(7),
        d(14),
        d(21),
        d(28),
        d(7),
        d(1),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
