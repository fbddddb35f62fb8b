"""Admin for meter reads (see meters/reads.py)."""
