"""The one place that owns money rounding.

Amounts are Decimal, never float, and are rounded with ROUND_HALF_UP to the cent before they are
saved (PostgreSQL and SQLite would otherwise round differently).
"""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.db import models

CENT = Decimal("0.01")


def to_cents(value) -> Decimal:
    """Round an amount to the cent, half up. Refuses floats: they cannot hold cents exactly."""
    if isinstance(value, float):
        raise TypeError("money must be Decimal, int or str, never float")
    try:
        return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
    except InvalidOperation as exc:
        raise ValueError(f"not an amount of money: {value!r}") from exc


def split(total: Decimal, share_percent: Decimal) -> tuple[Decimal, Decimal]:
    """Split `total` into (share, rest) with the share rounded half up and the rest taking the
    remainder, so the two parts always add up to the total exactly."""
    total = to_cents(total)
    share = to_cents(total * Decimal(share_percent) / Decimal(100))
    return share, total - share


def usd(value: Decimal | None, *, signed: bool = False, minus: str = "−") -> str:
    """$1,234.50 and −$5.00 (a true minus sign); with `signed`, +$5.00 for a positive amount; ""
    for None. Notices pass `minus="-"`: the true minus sign is not in GSM-7, an SMS's alphabet."""
    if value is None:
        return ""
    sign = minus if value < 0 else ("+" if signed and value > 0 else "")
    return f"{sign}${abs(value):,.2f}"


class MoneyField(models.DecimalField):
    """An amount of money: 12 digits, 2 decimal places."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", 12)
        kwargs.setdefault("decimal_places", 2)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, _path, args, kwargs = super().deconstruct()
        return name, "coop.money.MoneyField", args, kwargs
