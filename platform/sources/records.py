"""Physical lines and CSV records: one bad line never costs the good lines around it.

Decoding is line by line when it has to be: a line holding bytes that are not valid in the
file's encoding is rejected alone (``bytes not valid utf-8 ...``) and the other lines load. A file
where more than one non-blank line in ten (``MAX_UNDECODABLE_SHARE``) is undecodable, whose
header is undecodable, or that looks like UTF-16 without a byte-order mark is in another encoding
altogether: that raises one `SourceError` naming the file and the encoding. A source may declare
a fallback encoding (``encoding_fallback=latin-1``): a line that is not valid in the file's
encoding is then decoded with the fallback and read like any other line, and counted
(`LineTally.decoded_with_fallback`); only lines that neither encoding decodes are rejected, and
only those count towards ``MAX_UNDECODABLE_SHARE``.

CSV records may span lines (RFC 4180: a quoted field holds line breaks). A quote that opens a
field and does not close on a plausible record boundary is a broken line, not a long field: the
record reader re-synchronises by rejecting that one line (the reason names the line and the
column of the open quote) and parsing again from the next line. A multi-line record is plausible
when it parses (its closing quote is followed by a delimiter or the end of a line) and none of
the lines it would swallow, before its closing line, is on its own a complete record as wide as
the header. A valid line has balanced quotes and the header's width, so it is never swallowed.

Every physical line ends up counted once (`LineTally`): in an accepted record, in a rejected
record, in the header, or blank.
"""

from __future__ import annotations

import bisect
import codecs
import csv
import gzip
import io
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from data_platform.sources.result import LineTally, SourceError

# More undecodable lines than this share of the non-blank lines: the file is in another encoding.
MAX_UNDECODABLE_SHARE = 0.10
# Encodings in which a line break is the byte \n or \r and no other character holds those bytes:
# their bytes can be split into lines before decoding.
LINE_SPLITTABLE = {"utf-8", "utf8", "latin-1", "latin1", "iso-8859-1", "ascii", "cp1252"}
BYTE_LINES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")

# Big quoted fields (long descriptions) are data, not an error.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))


def read_bytes(path: Path) -> bytes:
    """Bytes of a plain or gzip'd file; missing, unreadable and empty files raise SourceError."""
    if not path.is_file():
        raise SourceError(path, "file not found")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise SourceError(path, f"cannot read file: {exc}") from None
    if not raw.strip():
        raise SourceError(path, "empty file")
    return raw


def physical_lines(text: str) -> Iterator[str]:
    # newline="" keeps line endings and splits only on \n, \r\n and \r, as the csv module does.
    return iter(io.StringIO(text, newline=""))


@dataclass
class DecodedLines:
    lines: list[str]  # physical lines with their line endings
    undecodable: dict[int, str] = field(default_factory=dict)  # 0-based line index -> reason
    encoding: str = "utf-8"
    fallback: set[int] = field(default_factory=set)  # 0-based indexes decoded with the fallback


def check_fallback_encoding(where: str | Path, name: str | None) -> str | None:
    """The declared fallback encoding, or None; one that cannot decode a single line raises.

    A fallback decodes the bytes of one physical line, split where the file's encoding has its
    line breaks: it must write a line break as the bytes of ASCII (UTF-16 and UTF-32 do not).
    """
    if name is None or not str(name).strip():
        return None
    name = str(name).strip()
    try:
        codecs.lookup(name)
    except LookupError:
        raise SourceError(where, f"encoding_fallback {name!r}: unknown encoding") from None
    if "\r\n".encode(name) != b"\r\n":
        raise SourceError(
            where,
            f"encoding_fallback {name!r}: decodes whole files only, not single lines "
            "(use a single-byte encoding such as latin-1 or cp1252)",
        )
    return name


def looks_like_utf16(raw: bytes) -> bool:
    # UTF-16 text in a Latin script has a NUL in every other byte and hardly any in the rest.
    sample = raw[:4096]
    even, odd = sample[0::2], sample[1::2]
    if len(odd) < 8:
        return False
    share = lambda part: part.count(0) / len(part)  # noqa: E731
    return (share(odd) >= 0.9 and share(even) <= 0.1) or (share(even) >= 0.9 and share(odd) <= 0.1)


def decode_lines(path: Path, encoding: str = "utf-8", fallback: str | None = None) -> DecodedLines:
    """The physical lines of a file; a BOM overrides `encoding`; a line that `encoding` cannot
    decode is decoded with `fallback` when one is declared, else marked undecodable."""
    raw = read_bytes(path)
    for bom, name in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
    ):
        if raw.startswith(bom):
            raw, encoding = raw[len(bom) :], name
            break
    else:
        if looks_like_utf16(raw):
            raise SourceError(
                path,
                f"not {encoding}: every other byte is NUL, as in UTF-16 without a byte-order mark "
                "(save it as UTF-8, or as UTF-16 with a byte-order mark)",
            )
    try:
        return DecodedLines(list(physical_lines(raw.decode(encoding))), encoding=encoding)
    except UnicodeDecodeError as exc:
        if codecs.lookup(encoding).name not in {codecs.lookup(e).name for e in LINE_SPLITTABLE}:
            line = raw[: exc.start].count(b"\n") + 1
            raise SourceError(
                path,
                f"bytes not valid {encoding} at line {line} (byte {exc.start}): "
                f"{raw[exc.start : exc.end]!r}",
            ) from None
    return decode_line_by_line(path, raw, encoding, fallback)


def decode_line_by_line(path: Path, raw: bytes, encoding: str, fallback: str | None = None) -> DecodedLines:
    out = DecodedLines([], encoding=encoding)
    first = None  # (line, byte offset in the file, bad bytes) of the first undecodable line
    offset = 0
    for index, piece in enumerate(BYTE_LINES.findall(raw)):
        try:
            out.lines.append(piece.decode(encoding))
        except UnicodeDecodeError as exc:
            if fallback is not None:
                try:
                    out.lines.append(piece.decode(fallback))
                    out.fallback.add(index)
                    offset += len(piece)
                    continue
                except UnicodeDecodeError:
                    pass
            bad = piece[exc.start : exc.end]
            out.lines.append(piece.decode(encoding, errors="backslashreplace"))
            nor = f" nor {fallback}" if fallback is not None else ""
            out.undecodable[index] = (
                f"bytes not valid {encoding}{nor} at line {index + 1}, column {exc.start + 1}: {bad!r}"
            )
            if first is None:
                first = (index + 1, offset + exc.start, bad)
        offset += len(piece)
    nonblank = sum(1 for line in out.lines if line.strip())
    if len(out.undecodable) > MAX_UNDECODABLE_SHARE * nonblank:
        line, at, bad = first
        raise SourceError(
            path,
            f"bytes not valid {encoding} at line {line} (byte {at}): {bad!r}; "
            f"{len(out.undecodable)} of {nonblank} lines are not valid {encoding} "
            f"(more than {MAX_UNDECODABLE_SHARE:.0%}): the file is in another encoding",
        )
    return out


# ---------------------------------------------------------------- CSV records


@dataclass
class Records:
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)  # fields of the well-formed records
    lines: list[int] = field(default_factory=list)  # first physical line of each record
    spans: list[int] = field(default_factory=list)  # physical lines of each record
    raws: list[str] = field(default_factory=list)
    bad: list[tuple[int, str, str, int]] = field(default_factory=list)  # (line, reason, raw, span)
    total_lines: int = 0
    header_lines: int = 0
    blank_lines: int = 0
    fallback_lines: int = 0

    def tally(self, accepted: int, rejected: int) -> LineTally:
        return LineTally(
            total=self.total_lines,
            accepted=accepted,
            rejected=rejected,
            header=self.header_lines,
            blank=self.blank_lines,
            decoded_with_fallback=self.fallback_lines,
        )


def open_quote_column(line: str, delimiter: str = ",", quotechar: str = '"') -> int | None:
    """1-based column of the quote opening a field that is still open at the end of `line`."""
    text = line.rstrip("\r\n")
    in_quotes, field_start, opened, i = False, True, None, 0
    while i < len(text):
        char = text[i]
        if in_quotes:
            if char == quotechar:
                if text[i + 1 : i + 2] == quotechar:
                    i += 2
                    continue
                in_quotes = False
        elif char == quotechar and field_start:
            in_quotes, opened = True, i + 1
        field_start = not in_quotes and char == delimiter
        i += 1
    return opened if in_quotes else None


def unbalanced_quote_reason(line: str, number: int, delimiter: str) -> str | None:
    column = open_quote_column(line, delimiter)
    if column is None:
        return None
    return (
        f"unbalanced quote: the quoted field opened at line {number}, column {column} "
        "does not close on a record boundary"
    )


class Feed:
    """Lines for a csv reader, from `start` to `stop`, that stop a record swallowing a record.

    A record still open after a line that is, on its own, a complete record as wide as the
    header has swallowed that line: the feed ends there, the reader fails, and the caller
    rejects the record's first line alone.
    """

    def __init__(self, lines: list[str], start: int, stop: int, dialect: dict):
        self.lines, self.start, self.stop, self.dialect = lines, start, stop, dialect
        self.record_start = start  # index of the first line of the record being read
        self.width: int | None = None

    def stands_alone(self, line: str) -> bool:
        try:
            fields = next(csv.reader([line], **self.dialect))
        except (csv.Error, StopIteration):
            return False
        return len(fields) == self.width

    def __iter__(self) -> Iterator[str]:
        lines = self.lines
        for k in range(self.start, self.stop):
            if (
                self.width is not None
                and k - 1 > self.record_start
                and self.stands_alone(lines[k - 1])
            ):
                return
            yield lines[k]


def read_records(
    path: Path,
    *,
    encoding: str = "utf-8",
    delimiter: str = ",",
    header: list[str] | None = None,
    quoting: int = csv.QUOTE_MINIMAL,
    fallback: str | None = None,
) -> Records:
    """CSV records with their line numbers; `header=None` reads it from the first record;
    `fallback` decodes the lines that `encoding` cannot (see `decode_lines`)."""
    decoded = decode_lines(path, encoding, fallback)
    lines, undecodable = decoded.lines, decoded.undecodable
    dialect = {"delimiter": delimiter, "quoting": quoting, "strict": True}
    out = Records(header=list(header or []), total_lines=len(lines), fallback_lines=len(decoded.fallback))
    need_header = header is None
    width = None if need_header else len(out.header)
    breaks = sorted(undecodable)
    position = 0
    while position < len(lines):
        if position in undecodable:
            if need_header:
                raise SourceError(path, f"unreadable header: {undecodable[position]}")
            out.bad.append((position + 1, undecodable[position], raw_text(lines, position, 1), 1))
            position += 1
            continue
        # A record never runs across an undecodable line: the reader stops before it.
        after = bisect.bisect_right(breaks, position)
        stop = breaks[after] if after < len(breaks) else len(lines)
        feed = Feed(lines, position, stop, dialect)
        feed.width = width
        reader = csv.reader(feed, **dialect)
        position = stop
        while True:
            try:
                fields = next(reader)
                error = None
            except StopIteration:
                break
            except csv.Error as exc:
                fields, error = None, exc
            first = feed.record_start
            feed.record_start = feed.start + reader.line_num
            span = feed.record_start - first
            if span == 0:  # the feed ended inside a record that had read no line: nothing left
                break
            if need_header:
                if error is not None:
                    raise SourceError(path, f"unreadable header: malformed record: {error}")
                out.header = [f.strip() for f in fields]
                out.header_lines += span
                need_header, width = False, len(out.header)
                feed.width = width
                continue
            quote = None
            if error is not None and (span > 1 or "end of data" in str(error)):
                quote = unbalanced_quote_reason(lines[first], first + 1, delimiter)
            if quote is not None:
                # A broken line, not a long field: reject it alone and read on from the next.
                out.bad.append((first + 1, quote, raw_text(lines, first, 1), 1))
                position = first + 1
                break
            if error is not None:
                out.bad.append((first + 1, f"malformed record: {error}", raw_text(lines, first, span), span))
            elif not fields or (len(fields) == 1 and not fields[0].strip()):
                out.blank_lines += span
            else:
                out.rows.append(fields)
                out.lines.append(first + 1)
                out.spans.append(span)
                # Most records are one line: slicing and joining only when they are not is cheaper.
                out.raws.append(lines[first] if span == 1 else "".join(lines[first : first + span]))
    if need_header:
        raise SourceError(path, "empty file")
    return out


def raw_text(lines: list[str], first: int, span: int) -> str:
    return "".join(lines[first : first + span]).rstrip("\r\n")


def check_columns(path: Path, records: Records, required: list[str]) -> None:
    header = records.header
    if len(header) == 1 and any(sep in header[0] for sep in (";", "\t", "|")):
        sep = next(s for s in (";", "\t", "|") if s in header[0])
        raise SourceError(
            path,
            f"wrong delimiter: expected ',' but the header {header[0]!r} is separated by {sep!r}",
        )
    missing = [c for c in required if c not in header]
    if missing:
        raise SourceError(path, f"missing required column(s) {missing}; header is {header}")
