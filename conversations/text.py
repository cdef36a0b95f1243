"""Text from outside made storable: what people send, and what the LLM answers."""

import re

# PostgreSQL refuses NUL in text, and UTF-8 has no lone UTF-16 surrogates (JSON can smuggle both in).
_SURROGATES = re.compile("[\ud800-\udfff]")


def text_storable(text: str) -> str:
    """`text` without NUL, each lone surrogate replaced by U+FFFD, so PostgreSQL can store it."""
    return _SURROGATES.sub("\ufffd", text.replace("\x00", ""))
