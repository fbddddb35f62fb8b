"""What every file importer shares (payments, meter reads, Green Button): how it reports a bad row
or element, the message for a file it cannot read, and the check of a CSV header row."""

import re
from dataclasses import dataclass

from coop.validators import mask_card_numbers


@dataclass(frozen=True)
class RowProblem:
    """A bad row or element: its line in the file, which field, and what is wrong (or a row
    reported but not imported)."""

    line: int
    field: str
    reason: str

    def __str__(self):
        return f"line {self.line}: {self.field}: {self.reason}"


# --- What every CSV importer checks of a file and its header row -----------------------------------


NOTHING_POSTED = "Nothing was posted."
NOTHING_IMPORTED = "Nothing was imported."


def unreadable(path, exc: OSError, *, nothing: str) -> str:
    """The message for a file that cannot be opened or read: the path, the system's reason, and
    what was therefore not done (`nothing`: "Nothing was posted.")."""
    return f"{path}: cannot be read ({exc.strerror or exc}). {nothing}"


def open_file(path, *, error: type[Exception], nothing: str, **kwargs):
    """`open(path, **kwargs)` (binary unless `encoding` is given), raising `error` with the
    unreadable() message when the file cannot be opened."""
    mode = "r" if "encoding" in kwargs else "rb"
    try:
        return open(path, mode, **kwargs)  # noqa: SIM115 - the caller closes it
    except OSError as exc:
        raise error(unreadable(path, exc, nothing=nothing)) from exc


def column_name(raw: str) -> str:
    """A header's column name as the importers compare it: any case, spaces and dashes as `_`."""
    return re.sub(r"[\s-]+", "_", raw.strip().lower())


def header_empty(header: list[str] | None) -> bool:
    """No header row, or one of empty cells: the file is empty."""
    return header is None or not any(h.strip() for h in header)


@dataclass(frozen=True)
class Header:
    """A header row checked against the columns an importer knows."""

    names: list[str]  # each column's column_name, in file order
    unknown: list[str]  # each column it does not know, quoted (card numbers masked), or "(... column N)"
    repeated: list[str]  # each known column named twice or more

    def has(self, column: str) -> bool:
        return column in self.names

    def positions(self, columns) -> dict[str, int]:
        """Where each of `columns` that the header names stands."""
        return {c: self.names.index(c) for c in columns if c in self.names}

    def problems(self) -> list[str]:
        """The unknown and repeated columns, said for a refusal (after the importer's own)."""
        parts = []
        if self.unknown:
            parts.append(f"unknown column(s): {', '.join(self.unknown)}")
        if self.repeated:
            parts.append(f"column(s) given twice: {', '.join(self.repeated)}")
        return parts


def header_check(header: list[str], *, known) -> Header:
    """Check a header row against the `known` columns. Unknown names are masked: a file saved
    without its header row has a data row here, card number and all."""
    names = [column_name(h) for h in header]
    unknown = [
        f"'{mask_card_numbers(h.strip())}'" if h.strip() else f"(a column with no name, column {i + 1})"
        for i, (h, n) in enumerate(zip(header, names, strict=True))
        if n not in known
    ]
    repeated = sorted({n for n in names if n in known and names.count(n) > 1})
    return Header(names=names, unknown=unknown, repeated=repeated)
