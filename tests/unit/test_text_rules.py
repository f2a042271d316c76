"""The characters a name or a reason may not hold."""

import sys
import unicodedata

from ledger.application import CONTROL_CHARACTERS, PROSE_CONTROL_CHARACTERS

EVERY_CODE_POINT = [chr(code) for code in range(sys.maxunicode + 1)]


def test_a_name_refuses_exactly_unicodes_control_characters() -> None:
    """Every code point of Unicode category Cc (C0, DEL, C1), and no other, is refused in a
    name."""
    refused = {char for char in EVERY_CODE_POINT if CONTROL_CHARACTERS.search(char)}
    control = {char for char in EVERY_CODE_POINT if unicodedata.category(char) == "Cc"}
    assert refused == control


def test_prose_refuses_the_same_but_for_tabs_and_line_feeds() -> None:
    """Prose keeps tabs and line feeds; every other control character is refused."""
    refused = {char for char in EVERY_CODE_POINT if PROSE_CONTROL_CHARACTERS.search(char)}
    control = {char for char in EVERY_CODE_POINT if CONTROL_CHARACTERS.search(char)}
    assert refused == control - {"\t", "\n"}
