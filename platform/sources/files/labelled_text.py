"""Labelled sentences: one ``text<TAB>label`` per line (UTF-8), split on the LAST tab with
quoting disabled, so quotes are part of the text; the label is 0 or 1."""

from __future__ import annotations

from pathlib import Path

from data_platform.sources.files.cache import cached
from data_platform.sources.files.listing import list_files
from data_platform.sources.files.registry import register_kind
from data_platform.sources.files.rows import NUL, NUL_REASON
from data_platform.sources.files.undated import load_sentences, sentence_frame
from data_platform.sources.files.windows import Parsed
from data_platform.sources.records import decode_lines
from data_platform.sources.result import LineTally, LoadResult


@cached
def parse_labelled_text(path: Path, fallback: str | None = None) -> Parsed:
    decoded = decode_lines(path, "utf-8", fallback)
    rows, rejects, blank = [], [], 0
    for number, line in enumerate(decoded.lines, start=1):
        content = line.rstrip("\r\n")
        if number - 1 in decoded.undecodable:
            rejects.append((number, None, None, decoded.undecodable[number - 1], content))
            continue
        if not content.strip():
            blank += 1
            continue
        sentence, tab, label = content.rpartition("\t")
        if not tab:
            rejects.append(
                (number, None, None, "wrong column count: no tab between text and label", content)
            )
        elif label.strip() not in ("0", "1"):
            rejects.append((number, "label", label, "unparseable label (expected 0 or 1)", content))
        elif not sentence.strip():
            rejects.append((number, "text", "", "missing required value", content))
        elif NUL in sentence:
            rejects.append((number, "text", sentence, NUL_REASON, content))
        else:
            rows.append((number, sentence, int(label.strip())))
    counted = LineTally(
        len(decoded.lines), blank=blank, decoded_with_fallback=len(decoded.fallback)
    )
    return sentence_frame(path, rows, rejects, counted)


@register_kind("labelled_text", ("reviews",))
def load_labelled_text(
    path: Path, entity: str, start, end, options=None, fallback=None
) -> LoadResult:
    files = list_files(path, suffixes=(".txt", ".tsv"))
    return load_sentences(path, parse_labelled_text, files, start, end, options, fallback)
