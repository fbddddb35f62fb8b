"""What the reads' import and estimation share: the reads table, the quality values and exact
thousandths in SQL."""

from meters.models import MeterRead

ACTUAL, ESTIMATED = MeterRead.Quality.ACTUAL.value, MeterRead.Quality.ESTIMATED.value
_READS = MeterRead._meta.db_table


def _milli_sql(column: str) -> str:
    # Exact on both databases: PostgreSQL's numeric(12,3) times 1000 is a whole number, and on
    # SQLite (where decimals are stored as REAL) ROUND takes away the binary fraction's error.
    return f"CAST(ROUND({column} * 1000) AS BIGINT)"
