"""Light checks and rendering of the PromQL written in SLO files (no full parser)."""

from __future__ import annotations

from harness.model import Window
from harness.slo._spec import WINDOW_PLACEHOLDER

_PAIRS = {")": "(", "]": "[", "}": "{"}
_QUOTES = "\"'`"


def promql_problems(query: str) -> list[str]:
    """Return what is visibly wrong with ``query``: empty, unbalanced brackets, open strings."""
    if not query.strip():
        return ["the query is empty"]
    stack: list[tuple[str, int]] = []
    quote: str | None = None
    escaped = False
    for column, char in enumerate(query, start=1):
        if quote is not None:
            escaped, quote = _in_string(char, quote, escaped)
            continue
        if char in _QUOTES:
            quote = char
        elif char in "([{":
            stack.append((char, column))
        elif char in _PAIRS:
            if not stack or stack[-1][0] != _PAIRS[char]:
                return [f"'{char}' at column {column} closes nothing that is open"]
            stack.pop()
    if quote is not None:
        return [f"a string opened with {quote} is never closed"]
    if stack:
        char, column = stack[-1]
        return [f"'{char}' at column {column} is never closed"]
    return []


def _in_string(char: str, quote: str, escaped: bool) -> tuple[bool, str | None]:
    if escaped:
        return False, quote
    if char == "\\" and quote != "`":
        return True, quote
    return False, (None if char == quote else quote)


def range_text(window: Window) -> str:
    """Return the window's duration as a PromQL range rounded to whole seconds, at least ``1s``."""
    return f"{max(1, round(window.duration_s))}s"


def render(query: str, window: Window) -> str:
    """Return ``query`` with every ``$window`` replaced by the window's duration."""
    return query.replace(WINDOW_PLACEHOLDER, range_text(window))
