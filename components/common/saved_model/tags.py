"""The tag-set TF Serving loads (its --saved_model_tags): one type, one spelling."""

from __future__ import annotations

from collections.abc import Iterable

# Sorted, without duplicates: ("serve",), ("gpu", "serve"). Every step and module passes this type.
Tags = tuple[str, ...]

SERVE_TAG = "serve"
SERVE: Tags = (SERVE_TAG,)


def parse_tags(value: str | Iterable[str] | None) -> Tags:
    """A tag-set from TF Serving's spelling ("serve,gpu") or any collection of tags; empty means {serve}."""
    items = (value or "").split(",") if isinstance(value, str) or value is None else list(value)
    return tuple(sorted({t.strip() for t in items if t.strip()})) or SERVE


def tag_set_text(tags: Iterable[str]) -> str:
    """{gpu,serve}: how messages spell a tag-set."""
    return "{" + ",".join(sorted(tags)) + "}"


def tags_option(tags: Iterable[str]) -> str:
    """serve,gpu: how TF Serving's --saved_model_tags and this project's --tags spell a tag-set."""
    return ",".join(parse_tags(tags))
