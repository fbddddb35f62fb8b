"""What every file importer reports about a bad row or element (payments, meter reads)."""

from dataclasses import dataclass


@dataclass(frozen=True)
class RowProblem:
    """A bad row or element: its line in the file, which field, and what is wrong (or a row
    reported but not imported)."""

    line: int
    field: str
    reason: str

    def __str__(self):
        return f"line {self.line}: {self.field}: {self.reason}"
