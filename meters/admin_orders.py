"""Admin for service orders and the field-order list (see meters/headend.py)."""
