"""Sentence polarity (``rt-polarity.pos`` / ``rt-polarity.neg``, Latin-1): one sentence per
line, labelled by its file."""

from __future__ import annotations

from pathlib import Path

from data_platform.sources.files.cache import cached
from data_platform.sources.files.listing import find_member
from data_platform.sources.files.registry import register_kind
from data_platform.sources.files.rows import NUL, NUL_REASON
from data_platform.sources.files.undated import load_sentences, sentence_frame
from data_platform.sources.files.windows import Parsed
from data_platform.sources.records import decode_lines
from data_platform.sources.result import LineTally, LoadResult, SourceError


@cached
def parse_polarity(path: Path, fallback: str | None = None) -> Parsed:
    label = 1 if path.name.removesuffix(".gz").endswith(".pos") else 0
    # Every byte is a Latin-1 character: nothing is left for a fallback to decode.
    lines = decode_lines(path, "latin-1").lines
    rows, rejects, blank = [], [], 0
    for number, line in enumerate(lines, start=1):
        content = line.rstrip("\r\n")
        if not line.strip():
            blank += 1
            continue
        if NUL in content:
            rejects.append((number, "text", content, NUL_REASON, content))
        else:
            rows.append((number, content, label))
    return sentence_frame(path, rows, rejects, LineTally(len(lines), blank=blank))


@register_kind("polarity", ("reviews",))
def load_polarity(path: Path, entity: str, start, end, options=None, fallback=None) -> LoadResult:
    if path.is_file():
        raise SourceError(
            path, "polarity source must be a folder with rt-polarity.pos and rt-polarity.neg"
        )
    files = [find_member(path, name) for name in ("rt-polarity.neg", "rt-polarity.pos")]
    if not path.is_dir() or None in files:
        raise SourceError(path, "folder must hold rt-polarity.pos and rt-polarity.neg")
    return load_sentences(path, parse_polarity, files, start, end, options, fallback)
