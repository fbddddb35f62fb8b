import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Account
from billing.models import DailyRun, Deduction, LedgerAccount
from demo import bench

pytestmark = pytest.mark.django_db

LAST_LINE = re.compile(
    r"bench_daily accounts=(\d+) import_s=(\d+\.\d\d) run_s=(\d+\.\d\d) select_s=(\d+\.\d\d) "
    r"floor_s=(\d+\.\d\d) ratio=(\d+\.\d\d)"
)


def test_bench_daily_runs_every_step_for_real_and_ends_with_the_exact_summary_line():
    out = StringIO()
    call_command("bench_daily", accounts=40, workers=1, no_record=True, stdout=out)
    lines = out.getvalue().strip().splitlines()
    match = LAST_LINE.fullmatch(lines[-1])
    assert match, lines[-1]
    accounts, _import_s, run_s, _select_s, _floor_s, _ratio = match.groups()
    assert accounts == "40"
    assert float(run_s) > 0  # (at 40 accounts the import and the floor may round to 0.00)
    # What it timed really happened: one finished run with a deduction per account, posted to
    # the ledger and passing its audit.
    run = DailyRun.objects.get()
    assert run.status == DailyRun.Status.FINISHED and run.deductions == 40
    assert Deduction.objects.count() == Account.objects.prepaid().count() == 40
    assert LedgerAccount.objects.filter(purpose=LedgerAccount.Purpose.PREPAID_CREDIT).count() == 40
    assert "daily run: 40 deductions in" in out.getvalue() and "1 worker" in out.getvalue()
    call_command("ledger_audit", stdout=StringIO())


def test_bench_daily_refuses_a_database_that_has_data():
    call_command("bench_daily", accounts=5, workers=1, no_record=True, stdout=StringIO())
    with pytest.raises(CommandError, match="needs an empty database; this one has 5 members"):
        call_command("bench_daily", accounts=5, workers=1, no_record=True, stdout=StringIO())


def test_the_figures_are_added_as_a_row_of_the_benchmarks_table(tmp_path):
    result = bench.BenchResult(
        accounts=1_000_000,
        day=None,
        build_s=100.0,
        import_s=20.0,
        run_s=36.42,
        workers=2,
        notices_s=14.16,
        select_s=2.36,
        floor_s=3.68,
        candidates=0,
        deductions=1_000_000,
        peak_mb=140.4,
    )
    path = tmp_path / "benchmarks.md"
    bench.record(result, path)
    bench.record(result, path)
    rows = [line for line in path.read_text().splitlines() if line.startswith("| 20")]
    assert len(rows) == 2
    assert rows[0].split(" | ")[2:] == [
        "1,000,000",
        "20.00 (50,000)",
        "36.42 (2 workers)",
        "14.16",
        "2.36",
        "3.68",
        "9.90",
        "140 |",
    ]
