"""Name patterns that limit a token or a webhook to some groups or apps (`shop-*`).

A pattern is shell-style (`*`, `?`, `[...]`, as fnmatch has them), matched
against the whole lowercase name (a group's label, an app's name), so `shop-*`
never matches `myshop-1`. A limit is a list of patterns, any of which may match;
None means no limit. An empty list would match nothing at all, which is never
what a caller means, so it is refused like any other malformed pattern.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Sequence

from fodns.errors import Invalid

PATTERN_MAX_LENGTH = 64
PATTERNS_MAX = 32
# What a label or an app name is made of, plus the pattern characters.
PATTERN = re.compile(r"^[a-z0-9*?\[\]!._-]+$")


def check_patterns(field: str, patterns: Sequence[str] | None) -> tuple[str, ...] | None:
    """The patterns, lowercased, or None for no limit; Invalid naming `field` for an
    empty list, too many, an empty, over-long or malformed pattern."""
    if patterns is None:
        return None
    if not patterns:
        raise Invalid(field, "give at least one pattern, or null for no limit")
    if len(patterns) > PATTERNS_MAX:
        raise Invalid(field, f"at most {PATTERNS_MAX} patterns")
    checked = []
    for pattern in patterns:
        lowered = pattern.lower()
        if not lowered or len(lowered) > PATTERN_MAX_LENGTH or not PATTERN.fullmatch(lowered):
            raise Invalid(
                field,
                f"{pattern!r} is not a name pattern (1-{PATTERN_MAX_LENGTH} of a-z 0-9 . _ -"
                " and the wildcards * ? [...])",
            )
        checked.append(lowered)
    return tuple(checked)


def matches(patterns: Sequence[str] | None, name: str) -> bool:
    """Whether `name` falls within the limit (always, when there is none)."""
    if patterns is None:
        return True
    lowered = name.lower()
    return any(fnmatch.fnmatchcase(lowered, pattern) for pattern in patterns)


def all_match(patterns: Sequence[str] | None, names: Iterable[str | None]) -> bool:
    """Whether every given name (None: that side is empty) falls within the limit."""
    return all(name is None or matches(patterns, name) for name in names)
