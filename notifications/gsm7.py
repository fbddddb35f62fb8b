"""GSM 03.38 (GSM-7): the alphabet an SMS is sent in when it can be.

A text made only of GSM-7 characters fits 160 of them in one segment (153 per segment once split);
a single character outside it (a curly quote pasted from a word processor, an em dash) sends the
whole text as UCS-2: 70 characters a segment, 67 once split. Carriers bill per segment, and a
notice split in two may arrive out of order, so notices are kept to one GSM-7 segment where they
can be: `normalize` replaces the usual look-alikes, and `segments` says what a text will cost.
"""

import math

BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENSION = "\f^{}\\[~]|€"  # each takes two septets (an escape and the character)
_BASIC = frozenset(BASIC) - {"\x1b"}
_EXTENSION = frozenset(EXTENSION)

SINGLE_GSM7 = 160
MULTI_GSM7 = 153
SINGLE_UCS2 = 70
MULTI_UCS2 = 67

# Look-alikes outside GSM-7 that people and word processors type, and what to send instead.
REPLACEMENTS = {
    "\u2018": "'",
    "\u2019": "'",
    "\u201a": "'",
    "\u201b": "'",
    "\u2032": "'",
    "\u201c": '"',
    "\u201d": '"',
    "\u201e": '"',
    "\u2033": '"',
    "\u2013": "-",
    "\u2014": "-",
    "\u2012": "-",
    "\u2212": "-",
    "\u2010": "-",
    "\u2011": "-",
    "\u2026": "...",
    "\u00a0": " ",
    "\u2007": " ",
    "\u2009": " ",
    "\u202f": " ",
    "\t": " ",
    "\u2022": "-",
    "\u00b7": "-",
    "\u00e1": "a",
    "\u00ed": "i",
    "\u00f3": "o",
    "\u00fa": "u",
    "\u00e2": "a",
    "\u00ea": "e",
    "\u00ee": "i",
    "\u00f4": "o",
    "\u00fb": "u",
    "\u00eb": "e",
    "\u00ef": "i",
    "\u00e7": "c",
}
_TABLE = str.maketrans(REPLACEMENTS)


def is_gsm7(text: str) -> bool:
    return all(c in _BASIC or c in _EXTENSION for c in text)


def septets(text: str) -> int:
    """Length in GSM-7 septets (extension characters count two)."""
    return sum(2 if c in _EXTENSION else 1 for c in text)


def non_gsm7_characters(text: str) -> list[str]:
    return sorted({c for c in text if c not in _BASIC and c not in _EXTENSION})


def normalize(text: str) -> str:
    """`text` with the usual look-alikes replaced by GSM-7 characters; other characters (a name in
    another alphabet) are kept, and the text is then sent as UCS-2."""
    return text.translate(_TABLE)


def segments(text: str) -> int:
    """How many SMS segments `text` takes."""
    if not text:
        return 1
    if is_gsm7(text):
        n = septets(text)
        return 1 if n <= SINGLE_GSM7 else math.ceil(n / MULTI_GSM7)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= SINGLE_UCS2 else math.ceil(units / MULTI_UCS2)
