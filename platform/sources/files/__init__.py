"""File adapters: MovieLens, Online Retail, generic order CSVs, labelled sentences, polarity.

Every adapter returns a `LoadResult` whose `.data` is in the canonical schema and whose
`.rejected` holds one row per source row that could not be parsed (file, line, column, value,
reason, raw). Every data row of the input ends up in exactly one of the two, and `.lines` counts
every physical line of the files read (accepted, rejected, header or blank). Structural problems
(missing file, empty file, missing column, wrong delimiter, a file in another encoding) raise one
`SourceError` naming the file. One bad line costs only that line: a line with bytes that are not
valid in the file's encoding, or with a quote that opens a field and never closes on a record
boundary, is rejected alone and reading resumes on the next line (see
`data_platform.sources.records`).

Reading rules:

- files may be plain or gzip'd (``.gz``); a folder means every matching file in name order;
- CSV and labelled text are UTF-8 unless a byte-order mark says otherwise (UTF-8 or UTF-16 BOM);
  polarity files and MovieLens' ``u.item`` are Latin-1; line endings may be LF, CRLF or CR;
- the option ``encoding_fallback=<encoding>`` (e.g. ``orders_csv:data/orders?encoding_fallback=latin-1``)
  decodes a line that is not valid in the file's encoding with that encoding instead of
  rejecting it; such lines are counted in ``LoadResult.lines.decoded_with_fallback``;
- line numbers are physical line numbers (1 = the header of a CSV), of the first line of a record;
- blank lines carry no data and are not rows;
- labelled text is split on the LAST tab with quoting disabled: quotes are part of the text.

Windows: ``start``/``end`` (end exclusive) keep the event rows whose event time is in the
window. A rejected row belongs to the day of its event time when that could be parsed, else to
the date in its file's name (``YYYY-MM-DD.csv``), else to the first day of its file's valid
rows, so that a set of daily loads reports each reject exactly once. Online Retail folders of
``YYYY-MM-DD.csv`` files read only the files of the window. Parsed files are cached in-process,
keyed by (path, size, mtime).

Undated sources (labelled text, polarity) get a deterministic ``reviewed_at`` that does not
depend on the window asked for: the rows of the source, in file-name then line order, are
spread evenly over ``UNDATED_DAYS`` (28) days starting at the ``start=`` option of the spec,
else ``DATA_PLATFORM_START_DATE``, else ``UNDATED_START`` (2025-01-01); row ``i`` of ``n`` gets
``anchor + i * 28 days / n``. A window then selects a slice of them, so daily partitions
partition the source. ``review_id`` is a stable hash of (file name, line).

The package is laid out by responsibility. Each format module registers its kind(s) with
`registry.register_kind`: `movielens`, `online_retail`, `orders_csv`, `labelled_text` and
`polarity` (the two undated text kinds share `undated`). They share `cells` (typed cell
parsers), `rows` (typed rows and row rejects of one file), `listing` (which files a path means,
dated names), `cache` (parsed files), `windows` (reject attribution and window selection) and
`assembly` (the `LoadResult`). Adding a format is adding its module to `FORMATS` below.
"""

from data_platform.sources.files import (
    labelled_text,
    movielens,
    online_retail,
    orders_csv,
    polarity,
)
from data_platform.sources.files.cache import clear_cache
from data_platform.sources.files.cells import to_timestamps
from data_platform.sources.files.listing import dated_range
from data_platform.sources.files.registry import (
    ENCODING_FALLBACK,
    FILE_KINDS,
    LOADERS,
    load_file_source,
    register_kind,
    settle,
)
from data_platform.sources.files.rows import NUL, NUL_REASON, NUL_SHOWN
from data_platform.sources.files.undated import UNDATED_DAYS, UNDATED_START

# The format modules, in the order `FILE_KINDS` lists their kinds.
FORMATS = (movielens, online_retail, orders_csv, labelled_text, polarity)
settle(FORMATS)

__all__ = [
    "ENCODING_FALLBACK",
    "FILE_KINDS",
    "FORMATS",
    "LOADERS",
    "NUL",
    "NUL_REASON",
    "NUL_SHOWN",
    "UNDATED_DAYS",
    "UNDATED_START",
    "clear_cache",
    "dated_range",
    "load_file_source",
    "register_kind",
    "to_timestamps",
]
