"""Meter reads: importing them from files (imports.py), estimating the missing ones
(estimation.py), listing a meter's reads (selectors.py). A read is one meter's energy use on one
local day of the cooperative (meters.models.MeterRead); (meter, day) is its idempotency key.

Every public name is re-exported here (`from meters.reads import reads_import`)."""

from meters.reads.estimation import reads_estimate_missing
from meters.reads.imports import (
    CSV_COLUMNS,
    KWH,
    REGISTER,
    ReadProblem,
    ReadsImportReport,
    _Check,
    reads_import,
    reads_import_rows,
)
from meters.reads.selectors import meter_reads

__all__ = [
    "CSV_COLUMNS",
    "KWH",
    "REGISTER",
    "ReadProblem",
    "ReadsImportReport",
    "_Check",  # a test makes it lose a race (meters/tests/test_reads_import.py)
    "meter_reads",
    "reads_estimate_missing",
    "reads_import",
    "reads_import_rows",
]
