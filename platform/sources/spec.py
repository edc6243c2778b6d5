"""Source specs: the one-line strings that say where an entity comes from.

``synthetic`` | ``kind:path`` | ``kind:path?key=value&...`` | ``sql:<sqlalchemy-url>::<table or SELECT>``

File kinds: ``movielens``, ``online_retail``, ``orders_csv``, ``labelled_text``, ``polarity``.
Options after ``?`` are passed to the adapter; the undated kinds accept ``start=YYYY-MM-DD``,
the first day over which their rows are spread (see `data_platform.sources.files`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import sqlalchemy as sa

from data_platform.sources.files import FILE_KINDS
from data_platform.sources.result import SourceError

SYNTHETIC = "synthetic"
SQL = "sql"
KINDS: tuple[str, ...] = (SYNTHETIC, *FILE_KINDS, SQL)


@dataclass(frozen=True)
class SourceSpec:
    kind: str
    path: str = ""
    options: dict = field(default_factory=dict)

    def __str__(self) -> str:
        if self.kind == SYNTHETIC:
            return SYNTHETIC
        if self.kind == SQL:
            # Specs end up in error messages and reject rows: never with the URL's password.
            return f"{SQL}:{hide_password(self.path)}::{self.options.get('target', '')}"
        return f"{self.kind}:{self.path}"


def hide_password(url: str) -> str:
    """The URL with its password masked; a URL that does not parse is not echoed at all."""
    if not url:
        return url
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - any parse failure: the text may still hold a password
        return "<invalid url>"


def parse_spec(spec: str | SourceSpec) -> SourceSpec:
    if isinstance(spec, SourceSpec):
        return spec
    text = (spec or "").strip()
    if text == SYNTHETIC:
        return SourceSpec(SYNTHETIC)
    kind, sep, rest = text.partition(":")
    if not sep or kind not in KINDS or kind == SYNTHETIC:
        raise SourceError(
            text or "<empty spec>",
            f"expected 'synthetic' or '<kind>:<path>' with kind one of {list(KINDS)}",
        )
    if kind == SQL:
        url, sep, target = rest.partition("::")
        if not sep or not url.strip() or not target.strip():
            shown = f"{SQL}:{hide_password(url.strip())}" + (f"::{target.strip()}" if sep else "")
            raise SourceError(shown, "expected 'sql:<sqlalchemy-url>::<table or SELECT query>'")
        return SourceSpec(SQL, url.strip(), {"target": target.strip()})
    path, _, query = rest.partition("?")
    if not path.strip():
        raise SourceError(text, f"{kind} needs a path: '{kind}:<path>'")
    return SourceSpec(kind, path.strip(), dict(parse_qsl(query)))
