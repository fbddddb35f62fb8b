import pytest
from django.db import connection

pytestmark = pytest.mark.django_db


def _index_definition(name: str) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [name])
        else:
            cursor.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = %s", [name])
        row = cursor.fetchone()
    assert row, f"index {name} is missing"
    return row[0]


def test_the_deductions_day_index_is_a_block_range_index_on_postgresql_and_a_plain_one_elsewhere():
    definition = _index_definition("deduction_service_day_brin")
    if connection.vendor == "postgresql":
        assert "USING brin (service_day)" in definition
        assert "autosummarize='on'" in definition
    else:
        assert (
            definition == 'CREATE INDEX "deduction_service_day_brin" ON "billing_deduction" ("service_day")'
        )
