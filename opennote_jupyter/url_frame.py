"""Vectorized parsing of Opennote URLs into pandas DataFrames.

Importing this module imports pandas and pyarrow and registers the
``Series.opennote`` accessor, so ``urls.opennote.parse()`` works on any Series of
URL strings. :func:`opennote_jupyter.parse_video_urls` imports it on first use.

How the fast path works: rows that share a bucket prefix are handled together.
Within such a group the timestamp, UUID and separators sit at fixed byte offsets,
so pyarrow slices them out as dense byte matrices that numpy checks and converts.
Titles are percent-decoded twice with numpy on the concatenated UTF-8 bytes, which
gives what :func:`urllib.parse.unquote` gives as long as the bytes between the two
passes and after the second are valid UTF-8. Every row the fast path does not
accept (other hosts, rare timestamp shapes, invalid UTF-8 after decoding, bad
input) goes through :func:`opennote_jupyter.urls.parse_video_url`'s code one row at
a time, so both paths agree on every input.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from opennote_jupyter import urls as _urls

__all__ = ["OpennoteSeriesAccessor", "parse_video_urls", "parse_video_urls_dask"]

_NAT = np.iinfo(np.int64).min
_UUID_LEN = 36
# Distinct bucket prefixes looked for with vector passes before the remaining rows
# go through the per-row parser.
_MAX_PREFIX_GROUPS = 16
# Large inputs are parsed in chunks of this many rows, on this many threads at
# most. Chunks keep every temporary array small enough for the allocator to reuse
# its memory, which on the machines measured costs less than touching new pages.
_CHUNK_ROWS = 32_768
_MAX_WORKERS = 4
# A file extension longer than this takes the per-row parser.
_TAIL = 8

# Byte classes for the key templates below.
_DIGIT = "d"
_HEX = "h"


# Fixed-width key heads the fast path reads. In them ``d`` is an ASCII digit, ``h``
# a hex digit and ``A`` either ``A`` or ``a``. Other characters must match exactly.
_UUID_TEMPLATE = "hhhhhhhh-hhhh-hhhh-hhhh-hhhhhhhhhhhh"
_HEAD_TEMPLATES = {
    "current": "dddd-dd-ddTdd%3Add%3Add.dddddd-" + _UUID_TEMPLATE + "--",
    "current_whole_seconds": "dddd-dd-ddTdd%3Add%3Add-" + _UUID_TEMPLATE + "--",
    "legacy": "dddd-dd-ddTdd:dd:dd.dddddd---" + _UUID_TEMPLATE + "---",
    "legacy_whole_seconds": "dddd-dd-ddTdd:dd:dd---" + _UUID_TEMPLATE + "---",
    "image": "dddddddddddddd-" + _UUID_TEMPLATE + ".",
}
# The discriminator bytes (below) all sit in the first 24 bytes of every template.
_DISCRIMINATOR_WIDTH = 24


def _matches_template(matrix: np.ndarray, template: str) -> np.ndarray:
    """Return which rows of a (rows, len(template)) byte matrix fit the template.

    Every byte is checked against one or two ranges with elementwise arithmetic
    on the whole matrix, so no column is copied out and no table is looked up.
    Digits are checked here too, so :func:`_timestamps` only checks ranges.
    """
    first_low, first_span, second_or, second_low, second_span = _template_ranges(
        template
    )
    # uint8 arithmetic wraps, so "value - low < span" tests low <= value < low+span.
    ok = (matrix - first_low) < first_span
    ok |= ((matrix | second_or) - second_low) < second_span
    if ok.all():
        return np.ones(len(matrix), dtype=bool)
    return ok.all(axis=1)


def _template_ranges(template: str) -> tuple[np.ndarray, ...]:
    """Per-column byte ranges for :func:`_matches_template`.

    A byte fits its column if it lies in the first range, or if, with the column's
    OR mask applied, it lies in the second. Setting bit 0x20 folds ``A-F`` onto
    ``a-f`` and maps no other byte there.
    """
    cached = _RANGES.get(template)
    if cached is not None:
        return cached
    columns = []
    for char in template:
        code = ord(char)
        if char == _DIGIT:
            columns.append((ord("0"), 10, 0, ord("0"), 10))
        elif char == _HEX:
            columns.append((ord("0"), 10, 0x20, ord("a"), 6))
        elif char == "A":
            columns.append((ord("a"), 1, 0x20, ord("a"), 1))
        else:
            columns.append((code, 1, 0, code, 1))
    ranges = tuple(
        np.array(values, dtype=np.uint8) for values in zip(*columns, strict=True)
    )
    _RANGES[template] = ranges
    return ranges


_RANGES: dict[str, tuple[np.ndarray, ...]] = {}


# The shortest key any template accepts: an image key with a one-letter extension.
_MIN_KEY_LEN = len(_HEAD_TEMPLATES["image"]) + 1


def _digit_columns(template: str) -> list[int]:
    return [i for i, char in enumerate(template) if char == _DIGIT]


_HEX_VALUE = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX_VALUE[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX_VALUE[_c] = 10 + _i
_ALNUM = np.zeros(256, dtype=bool)
for _c in b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ":
    _ALNUM[_c] = True


class _Columns:
    """Column values filled in by the fast path and the per-row fallback."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.parsed = np.zeros(n, dtype=bool)
        self.created_us = np.full(n, _NAT, dtype=np.int64)
        self.ids = np.zeros((n, _UUID_LEN), dtype=np.uint8)
        self.buckets: list[str | None] = []
        self.bucket_code = np.full(n, -1, dtype=np.int32)
        self.file_types: list[str] = []
        self.file_type_code = np.full(n, -1, dtype=np.int32)
        # (row positions, large_string array) in assignment order. Later pieces win.
        self.title_pieces: list[tuple[np.ndarray, pa.Array]] = []
        self.errors: dict[int, str] = {}
        self._bucket_codes: dict[str | None, int] = {}
        self._file_type_codes: dict[str, int] = {}

    def bucket_code_for(self, bucket: str | None) -> int:
        if bucket is None:
            return -1
        code = self._bucket_codes.get(bucket)
        if code is None:
            code = self._bucket_codes[bucket] = len(self.buckets)
            self.buckets.append(bucket)
        return code

    def file_type_code_for(self, file_type: str) -> int:
        code = self._file_type_codes.get(file_type)
        if code is None:
            code = self._file_type_codes[file_type] = len(self.file_types)
            self.file_types.append(file_type)
        return code


def parse_video_urls(urls: Any, errors: str = "coerce") -> pd.DataFrame:
    """Parse many URLs into a DataFrame, as documented in ``urls``."""
    if errors not in ("coerce", "raise"):
        raise ValueError(f"errors must be 'coerce' or 'raise', got {errors!r}")
    index = urls.index if isinstance(urls, pd.Series) else None
    array, values = _to_arrow(urls)
    n = len(array) if array is not None else len(values)
    if n <= _CHUNK_ROWS:
        chunk, odd_rows = _chunk(array, values, 0)
        columns = _parse_array(chunk, odd_rows)
        _raise_first_error(errors, chunk, odd_rows, columns.errors, 0, index)
        return _to_frame(chunk, columns, index)
    starts = range(0, n, _CHUNK_ROWS)

    def parse_chunk(start: int) -> tuple[pa.Array, dict[int, Any], _Columns]:
        chunk, odd_rows = _chunk(array, values, start)
        return chunk, odd_rows, _parse_array(chunk, odd_rows)

    # numpy and pyarrow release the GIL in the heavy steps, so threads use the cores.
    workers = max(1, min(os.cpu_count() or 1, _MAX_WORKERS))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(parse_chunk, starts))
    for start, (chunk, odd_rows, columns) in zip(starts, results, strict=True):
        _raise_first_error(errors, chunk, odd_rows, columns.errors, start, index)
    return _join_frames([(chunk, columns) for chunk, _, columns in results], index)


def _chunk(
    array: pa.LargeStringArray | None, values: list[Any] | None, start: int
) -> tuple[pa.LargeStringArray, dict[int, Any]]:
    """Return rows ``[start, start + _CHUNK_ROWS)`` as arrow, with their odd rows.

    A list is converted chunk by chunk, in the worker that parses the chunk, so
    the parser reads each chunk's bytes soon after they are written, while they
    are likely still in the CPU cache.
    """
    if array is not None:
        return array.slice(start, _CHUNK_ROWS), {}
    return _list_to_arrow(values[start : start + _CHUNK_ROWS])


def _parse_array(array: pa.LargeStringArray, odd_rows: dict[int, Any]) -> _Columns:
    columns = _Columns(len(array))
    fallback: list[int] = sorted(odd_rows)
    if len(array):
        fallback.extend(_parse_fast(array, columns))
    _parse_rows(array, odd_rows, sorted(set(fallback)), columns)
    return columns


def _raise_first_error(
    errors: str,
    array: pa.Array,
    odd_rows: dict[int, Any],
    reasons: dict[int, str],
    start: int,
    index: pd.Index | None,
) -> None:
    if errors != "raise" or not reasons:
        return
    position = min(reasons)
    if position in odd_rows or array[position].is_valid:
        value = odd_rows.get(position, array[position].as_py())
        shown = f" {value!r}"
    else:
        # None, NaN and NA all arrive as nulls, so the original is not known.
        shown = ""
    where = f"position {start + position}"
    if index is not None:
        where += f" (index label {index[start + position]!r})"
    raise ValueError(
        f"invalid Opennote video URL{shown} at {where}: {reasons[position]}"
    )


def parse_video_urls_dask(urls: Any, errors: str = "coerce") -> Any:
    """Apply :func:`parse_video_urls` to each partition of a dask Series."""
    meta = _to_frame(pa.array([], pa.large_string()), _Columns(0), None)
    meta.index = urls._meta.index[:0]
    return urls.map_partitions(parse_video_urls, errors=errors, meta=meta)


# ---------------------------------------------------------------------------
# Input


def _to_arrow(
    urls: Any,
) -> tuple[pa.LargeStringArray | None, list[Any] | None]:
    """Return text Series and Index as one large_string array, other input as a list.

    Exactly one of the two results is not ``None``.
    """
    if isinstance(urls, (pd.Series, pd.Index)) and _is_text_dtype(urls.dtype):
        array = pa.array(urls.array)
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        return array.cast(pa.large_string()), None
    if isinstance(urls, (str, bytes)) or not isinstance(urls, Iterable):
        raise TypeError(
            "urls must be a list, Series, Index or other iterable of URL strings, "
            f"got {type(urls).__name__}"
        )
    return None, urls if isinstance(urls, list) else list(urls)


def _list_to_arrow(values: list[Any]) -> tuple[pa.LargeStringArray, dict[int, Any]]:
    """Convert a list of values to a large_string array.

    Returns the array and a dict from position to original value for the rows it
    cannot contain (non-strings, strings with lone surrogates). Those rows are null
    in the array.
    """
    try:
        # from_pandas=False is many times faster. NaN then raises, so the list
        # takes the per-value path below.
        return pa.array(values, type=pa.large_string(), from_pandas=False), {}
    except (pa.ArrowException, UnicodeEncodeError):
        pass
    odd_rows: dict[int, Any] = {}
    clean: list[str | None] = []
    for position, value in enumerate(values):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                odd_rows[position] = value
                value = None
        elif not _urls._is_missing(value):
            odd_rows[position] = value
            value = None
        else:
            value = None
        clean.append(value)
    return pa.array(clean, type=pa.large_string()), odd_rows


def _is_text_dtype(dtype: Any) -> bool:
    if isinstance(dtype, pd.StringDtype):
        return True
    return isinstance(dtype, pd.ArrowDtype) and (
        pa.types.is_string(dtype.pyarrow_dtype)
        or pa.types.is_large_string(dtype.pyarrow_dtype)
    )


# ---------------------------------------------------------------------------
# Fast path


def _parse_fast(array: pa.LargeStringArray, columns: _Columns) -> list[int]:
    """Parse the common rows into ``columns``, returning positions for the fallback."""
    fallback: list[int] = []
    binary = array.view(pa.large_binary())
    _, url_bytes = _buffers(binary)
    if (url_bytes == ord("?")).any() or (url_bytes == ord("#")).any():
        # Query strings and fragments (presigned URLs) never belong to the key.
        binary = pc.replace_substring_regex(binary, "(?s)[?#].*", "")
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    remaining = np.flatnonzero(valid)
    fallback.extend(np.flatnonzero(~valid).tolist())
    remaining_binary = binary.filter(pa.array(valid)) if not valid.all() else binary
    for _ in range(_MAX_PREFIX_GROUPS):
        if remaining.size == 0:
            break
        first = remaining_binary[0].as_py().decode("utf-8", "surrogatepass")
        try:
            bucket, key_start, _ = _urls._locate_key(first)
        except _urls._Mismatch:
            fallback.append(int(remaining[0]))
            remaining = remaining[1:]
            remaining_binary = remaining_binary.slice(1)
            continue
        prefix = first[:key_start].encode("utf-8")
        in_group = pc.starts_with(remaining_binary, prefix)
        in_group_np = in_group.to_numpy(zero_copy_only=False)
        if in_group_np.all():
            group_rows, group_binary = remaining, remaining_binary
            remaining = remaining[:0]
        else:
            group_rows = remaining[in_group_np]
            group_binary = remaining_binary.filter(in_group)
            remaining = remaining[~in_group_np]
            remaining_binary = remaining_binary.filter(pc.invert(in_group))
        fallback.extend(
            _parse_group(group_rows, group_binary, len(prefix), bucket, columns)
        )
    fallback.extend(remaining.tolist())
    return fallback


def _dense(binary: pa.Array, start: int, stop: int | None) -> np.ndarray:
    """Slice ``[start, stop)`` of every row into a (rows, width) uint8 matrix.

    Every row must be long enough for the slice to have the same width.
    """
    sliced = pc.binary_slice(binary, start, stop)
    offsets, data = _buffers(sliced)
    width = int(offsets[1]) if len(sliced) else 0
    if not (np.diff(offsets) == width).all():
        raise RuntimeError("rows of unequal width in a dense slice")
    return data.reshape(len(sliced), width)


def _buffers(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Return the offsets (starting at 0) and data bytes of a large binary array."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)
    offsets = offsets[array.offset : array.offset + len(array) + 1]
    data = np.frombuffer(array.buffers()[2] or b"", dtype=np.uint8)
    data = data[offsets[0] : offsets[-1]]
    return offsets - offsets[0], data


def _take(rows: np.ndarray, binary: pa.Array, mask: np.ndarray):
    if mask.all():
        return rows, binary
    return rows[mask], binary.filter(pa.array(mask))


def _parse_group(
    rows: np.ndarray,
    binary: pa.Array,
    prefix_len: int,
    bucket: str | None,
    columns: _Columns,
) -> list[int]:
    """Parse rows that share one bucket prefix, returning the rows left over."""
    fallback: list[int] = []
    key_len = pc.binary_length(binary).to_numpy(zero_copy_only=False) - prefix_len
    long_enough = key_len >= _MIN_KEY_LEN
    fallback.extend(rows[~long_enough].tolist())
    rows, binary = _take(rows, binary, long_enough)
    key_len = key_len[long_enough]
    if rows.size == 0:
        return fallback

    # The extension is the run of ASCII letters and digits after the key's last dot.
    tail = _dense(binary, -_TAIL, None)
    alnum_from_end = _ALNUM[tail[:, ::-1]]
    ext_len = np.cumprod(alnum_from_end, axis=1, dtype=np.int8).sum(axis=1)
    dot_index = np.clip(_TAIL - 1 - ext_len, 0, _TAIL - 1)
    dot_ok = (ext_len >= 1) & (ext_len < _TAIL)
    dot_ok &= tail[np.arange(len(tail)), dot_index] == ord(".")

    # Pick each row's template by a few bytes. The numbers are positions in
    # _HEAD_TEMPLATES. The templates differ at these bytes, so a row fits at most
    # the one picked, and _matches_template checks that it does.
    discriminator = _dense(binary, prefix_len, prefix_len + _DISCRIMINATOR_WIDTH)
    is_image = discriminator[:, 4] != ord("-")
    is_current = discriminator[:, 13] == ord("%")
    names = np.where(
        is_image,
        4,
        np.where(
            is_current,
            np.where(discriminator[:, 23] == ord("."), 0, 1),
            np.where(discriminator[:, 19] == ord("."), 2, 3),
        ),
    )
    bucket_code = columns.bucket_code_for(bucket)
    for number, (name, template) in enumerate(_HEAD_TEMPLATES.items()):
        selected = names == number
        if not selected.any():
            continue
        width = len(template)
        title_len = key_len - width - ext_len - 1 if name != "image" else None
        if name == "image":
            fits = dot_ok & (key_len == width + ext_len)
        else:
            fits = dot_ok & (title_len >= 0)
        fallback.extend(rows[selected & ~fits].tolist())
        chosen = selected & fits
        if not chosen.any():
            continue
        t_rows, t_binary = _take(rows, binary, chosen)
        matrix = _dense(t_binary, prefix_len, prefix_len + width)
        created_us, date_ok = _timestamps(matrix, template)
        date_ok &= _matches_template(matrix, template)
        fallback.extend(t_rows[~date_ok].tolist())
        if not date_ok.all():
            t_binary = t_binary.filter(pa.array(date_ok))
            matrix = matrix[date_ok]
            created_us = created_us[date_ok]
            chosen_positions = np.flatnonzero(chosen)[date_ok]
            t_rows = t_rows[date_ok]
        else:
            chosen_positions = np.flatnonzero(chosen)
        uuid_start = template.index("h")
        # Setting bit 0x20 lowercases A-F and leaves digits and "-" as they are.
        ids = matrix[:, uuid_start : uuid_start + _UUID_LEN] | np.uint8(0x20)

        t_ext_len = ext_len[chosen_positions]
        t_tail = tail[chosen_positions]
        file_type_code = _file_type_codes(t_tail, t_ext_len, columns)

        columns.parsed[t_rows] = True
        columns.created_us[t_rows] = created_us
        columns.ids[t_rows] = ids
        columns.bucket_code[t_rows] = bucket_code
        columns.file_type_code[t_rows] = file_type_code
        if name == "image":
            continue
        for length in np.flatnonzero(np.bincount(t_ext_len)):
            same = t_ext_len == length
            e_rows, e_binary = _take(t_rows, t_binary, same)
            raw_titles = pc.binary_slice(
                e_binary, prefix_len + width, -(int(length) + 1)
            )
            columns.title_pieces.append((e_rows, raw_titles))
    return fallback


def _file_type_codes(
    tail: np.ndarray, ext_len: np.ndarray, columns: _Columns
) -> np.ndarray:
    """Factorize the extensions in the tail bytes into ``columns`` codes."""
    keep = np.arange(_TAIL)[None, :] >= (_TAIL - ext_len)[:, None]
    packed = np.ascontiguousarray(np.where(keep, tail, 0)).view(np.uint64).ravel()
    codes, uniques = pd.factorize(packed)
    mapping = np.empty(len(uniques), dtype=np.int32)
    for i, value in enumerate(uniques):
        text = np.array([value], dtype=np.uint64).view(np.uint8).tobytes()
        mapping[i] = columns.file_type_code_for(text.strip(b"\0").decode("ascii"))
    return mapping[codes]


def _timestamps(matrix: np.ndarray, template: str) -> tuple[np.ndarray, np.ndarray]:
    """Read the template's digits as microseconds since the epoch.

    Returns the values and a mask of the rows that contain a real date and time.
    The values of the other rows are undefined.
    """
    # Digits past 9 are rejected by _matches_template, so here they only need to
    # stay harmless. Every field, even six-digit microseconds, fits in int32.
    digits = matrix[:, _digit_columns(template)] - np.uint8(ord("0"))

    def number(first: int, count: int) -> np.ndarray:
        value = digits[:, first].astype(np.int32)
        for column in range(first + 1, first + count):
            value *= 10
            value += digits[:, column]
        return value.astype(np.int64)

    year, month, day = number(0, 4), number(4, 2), number(6, 2)
    hour, minute, second = number(8, 2), number(10, 2), number(12, 2)
    micro = number(14, 6) if digits.shape[1] > 14 else 0
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    days_in_month = _DAYS_IN_MONTH[np.clip(month, 0, 12)] + (leap & (month == 2))
    ok = (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1)
    ok &= (day <= days_in_month) & (hour <= 23) & (minute <= 59) & (second <= 59)
    seconds = _days_from_civil(year, month, day) * 86400
    seconds += hour * 3600 + minute * 60 + second
    return seconds * 1_000_000 + micro, ok


_DAYS_IN_MONTH = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray):
    """Count days from 1970-01-01 to a proleptic Gregorian date, vectorized.

    The era arithmetic is the days-from-civil algorithm, whose March-based years
    make the leap day the last day of a year.
    """
    year = year - (month <= 2)
    era = np.floor_divide(year, 400)
    year_of_era = year - era * 400
    day_of_year = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100
    day_of_era += day_of_year
    return era * 146097 + day_of_era - 719468


# ---------------------------------------------------------------------------
# Titles


def _percent_decode(
    offsets: np.ndarray, data: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Percent-decode every row of a binary array as ``unquote_to_bytes`` does.

    ``offsets`` start at 0. Returns the new offsets and data, and the positions (in
    the input) of escapes that decoded to a byte of 0x80 or above, whose rows may
    no longer be valid UTF-8.
    """
    percent = np.flatnonzero(data == ord("%"))
    if percent.size == 0:
        return offsets, data, percent
    # An escape needs two more bytes in its own row. near_end[p + 2] is True when
    # position p is one of the last two bytes of a row. The +2 keeps indexes >= 0
    # for rows that are empty.
    near_end = np.zeros(data.size + 2, dtype=bool)
    ends = offsets[1:]
    near_end[ends] = True
    near_end[ends + 1] = True
    percent = percent[~near_end[percent + 2]]
    high = _HEX_VALUE[data[percent + 1]]
    low = _HEX_VALUE[data[percent + 2]]
    is_escape = (high < 16) & (low < 16)
    escapes = percent[is_escape]
    values = (high[is_escape] << 4) | low[is_escape]
    if escapes.size == 0:
        return offsets, data, escapes
    decoded = data.copy()
    decoded[escapes] = values
    keep = np.ones(data.size, dtype=bool)
    keep[escapes + 1] = False
    keep[escapes + 2] = False
    decoded = _compress(decoded, keep)
    new_offsets = offsets - 2 * np.searchsorted(escapes, offsets)
    return new_offsets, decoded, escapes[values >= 0x80]


def _decode_canonical(
    offsets: np.ndarray, data: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Decode titles twice in one pass when every ``%`` starts ``%25`` + two hex digits.

    That is the shape ``quote(quote(title))`` produces. The first unquote turns each
    ``%25`` into ``%`` and changes nothing else, so the second decodes exactly these
    escapes. Returns ``None`` when any row has another shape. Otherwise the result
    is as from :func:`_percent_decode`.
    """
    percent = np.flatnonzero(data == ord("%"))
    if percent.size == 0:
        return offsets, data, percent
    # An escape needs four more bytes in its own row, so a "%" among the last four
    # bytes of a row is not one. Rows shorter than four bytes may look into the row
    # before, and a "%" found there is near that row's end too.
    ends = offsets[1:]
    for back in range(1, 5):
        if (data[np.maximum(ends - back, 0)] == ord("%")).any():
            return None
    # The four bytes after each "%" read as one little-endian word: "2", "5" and
    # two hex digits. The padded copy keeps the last word inside the buffer.
    padded = np.zeros(data.size + 4, dtype=np.uint8)
    padded[: data.size] = data
    words = _byte_words(padded)[percent + 1]
    if not ((words & 0xFFFF) == _WORD_25).all():
        return None
    high = _HEX_VALUE[(words >> 16) & 0xFF]
    low = _HEX_VALUE[words >> 24]
    if not ((high < 16) & (low < 16)).all():
        return None
    values = (high << 4) | low
    padded[percent] = values
    keep = np.ones(data.size + 4, dtype=bool)
    _byte_words(keep.view(np.uint8))[percent + 1] = 0
    new_offsets = offsets - 4 * np.searchsorted(percent, offsets)
    decoded = _compress(padded[: data.size], keep[: data.size])
    return new_offsets, decoded, percent[values >= 0x80]


_WORD_25 = ord("2") | ord("5") << 8


def _compress(data: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Return ``data[keep]``, using pyarrow's filter.

    On the 2-core test machine it took about 40% of the time of numpy's boolean
    indexing for title buffers (numpy 2.4, pyarrow 26).
    """
    bits = np.packbits(keep, bitorder="little")
    mask = pa.Array.from_buffers(pa.bool_(), data.size, [None, pa.py_buffer(bits)])
    values = pa.Array.from_buffers(pa.uint8(), data.size, [None, pa.py_buffer(data)])
    kept = values.filter(mask)
    if len(kept) == 0:
        return np.empty(0, dtype=np.uint8)
    start = kept.offset
    return np.frombuffer(kept.buffers()[1], np.uint8)[start : start + len(kept)]


def _byte_words(buffer: np.ndarray) -> np.ndarray:
    """View a uint8 array as overlapping little-endian uint32 words, one per byte."""
    return np.ndarray(
        shape=(buffer.size - 3,),
        dtype="<u4",
        buffer=buffer,
        strides=(1,),
    )


def _invalid_utf8_rows(
    offsets: np.ndarray, data: np.ndarray, high_positions: np.ndarray
) -> list[int]:
    """Return the rows that are not valid UTF-8.

    ``high_positions`` are the positions of escapes that decoded to a byte of 0x80
    or above. When there are none, no row can have become invalid.
    """
    if high_positions.size == 0:
        return []
    array = pa.Array.from_buffers(
        pa.large_string(),
        len(offsets) - 1,
        [None, pa.py_buffer(offsets), pa.py_buffer(data)],
    )
    try:
        array.validate(full=True)
    except pa.ArrowInvalid:
        pass
    else:
        return []
    candidates = np.unique(
        np.searchsorted(offsets, np.flatnonzero(data >= 0x80), side="right") - 1
    )
    invalid = []
    for row in candidates.tolist():
        try:
            data[offsets[row] : offsets[row + 1]].tobytes().decode("utf-8")
        except UnicodeDecodeError:
            invalid.append(row)
    return invalid


def _decode_titles(columns: _Columns) -> list[int]:
    """Decode the raw title pieces twice, returning the rows left for the fallback."""
    if not columns.title_pieces:
        return []
    rows = np.concatenate([piece_rows for piece_rows, _ in columns.title_pieces])
    raw = pa.concat_arrays([piece for _, piece in columns.title_pieces])
    offsets, data = _buffers(raw)
    decoded = _decode_canonical(offsets, data)
    if decoded is not None:
        offsets, data, high = decoded
        bad = set(_invalid_utf8_rows(offsets, data, high))
    else:
        offsets, data, high = _percent_decode(offsets, data)
        # Between the passes unquote works on str, so a row whose bytes are not
        # UTF-8 here would get U+FFFD replacements. Such a row takes the fallback.
        bad = set(_invalid_utf8_rows(offsets, data, high))
        offsets, data, high = _percent_decode(offsets, data)
        bad.update(_invalid_utf8_rows(offsets, data, high))
    titles = pa.Array.from_buffers(
        pa.large_string(),
        len(offsets) - 1,
        [None, pa.py_buffer(np.ascontiguousarray(offsets)), pa.py_buffer(data)],
    )
    columns.title_pieces = [(rows, titles)]
    return rows[sorted(bad)].tolist() if bad else []


# ---------------------------------------------------------------------------
# Per-row fallback and output


def _parse_rows(
    array: pa.LargeStringArray,
    odd_rows: dict[int, Any],
    positions: list[int],
    columns: _Columns,
) -> None:
    """Parse ``positions`` one at a time, after the fast path's titles are decoded."""
    positions = sorted(set(positions) | set(_decode_titles(columns)))
    title_rows: list[int] = []
    titles: list[str] = []
    for position in positions:
        value = odd_rows[position] if position in odd_rows else array[position].as_py()
        try:
            record = _urls._parse(value)
        except _urls._Mismatch as exc:
            columns.errors[position] = exc.reason
            columns.parsed[position] = False
            columns.created_us[position] = _NAT
            columns.bucket_code[position] = -1
            columns.file_type_code[position] = -1
            continue
        columns.errors.pop(position, None)
        columns.parsed[position] = True
        stamp = np.datetime64(record.created_at, "us").astype(np.int64)
        columns.created_us[position] = stamp
        columns.ids[position] = np.frombuffer(record.id.encode("ascii"), np.uint8)
        columns.bucket_code[position] = columns.bucket_code_for(record.bucket)
        columns.file_type_code[position] = columns.file_type_code_for(record.file_type)
        if record.title is not None:
            title_rows.append(position)
            titles.append(record.title)
    if positions:
        # Rows the fallback parsed without a title, or failed, must not keep a
        # title from the fast path.
        fallback_rows = np.asarray(positions, dtype=np.int64)
        columns.title_pieces.append(
            (fallback_rows, pa.nulls(len(fallback_rows), pa.large_string()))
        )
    if title_rows:
        columns.title_pieces.append(
            (
                np.asarray(title_rows, dtype=np.int64),
                pa.array(titles, pa.large_string()),
            )
        )


def _title_array(columns: _Columns) -> pa.Array:
    n = columns.n
    pieces = columns.title_pieces
    if len(pieces) == 1 and _titles_in_row_order(*pieces[0]):
        rows, titles = pieces[0]
        if len(rows) == n:
            return titles
        # Spread the decoded titles over all rows by offsets alone. Rows without
        # a title get zero length and a null. A take would copy every title.
        title_offsets, data = _buffers(titles)
        lengths = np.zeros(n, dtype=np.int64)
        lengths[rows] = np.diff(title_offsets)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        valid = np.zeros(n, dtype=bool)
        valid[rows] = True
        return pa.Array.from_buffers(
            pa.large_string(),
            n,
            [pa.array(valid).buffers()[1], pa.py_buffer(offsets), pa.py_buffer(data)],
            null_count=n - len(rows),
        )
    null_slot = sum(len(piece) for _, piece in pieces)
    index = np.full(n, null_slot, dtype=np.int64)
    start = 0
    for rows, piece in pieces:
        index[rows] = np.arange(start, start + len(piece))
        start += len(piece)
    combined = pa.chunked_array(
        [piece.cast(pa.large_string()) for _, piece in pieces]
        + [pa.nulls(1, pa.large_string())]
    )
    return combined.take(pa.array(index)).combine_chunks()


def _titles_in_row_order(rows: np.ndarray, titles: pa.Array) -> bool:
    """Tell whether ``titles`` has no nulls and ``rows`` strictly increase."""
    if titles.null_count or not pa.types.is_large_string(titles.type):
        return False
    return rows.size < 2 or bool((rows[1:] > rows[:-1]).all())


def _codes_array(codes: np.ndarray, values: list[str | None]) -> pa.Array:
    dictionary = pa.array(values or [""], pa.large_string())
    indices = pa.array(codes, mask=codes < 0)
    return dictionary.take(indices)


def _ids_array(columns: _Columns) -> pa.Array:
    parsed = columns.parsed
    lengths = np.where(parsed, _UUID_LEN, 0).astype(np.int64)
    offsets = np.zeros(columns.n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = columns.ids if parsed.all() else columns.ids[parsed]
    data = np.ascontiguousarray(data).ravel()
    validity = pa.array(parsed).buffers()[1] if not parsed.all() else None
    return pa.Array.from_buffers(
        pa.large_string(),
        columns.n,
        [validity, pa.py_buffer(offsets), pa.py_buffer(data)],
        null_count=int(columns.n - parsed.sum()),
    )


def _string_series(array: pa.Array, index: pd.Index | None) -> pd.Series:
    return pd.Series(pd.arrays.ArrowStringArray(array), index=index, copy=False)


def _to_frame(
    array: pa.LargeStringArray, columns: _Columns, index: pd.Index | None
) -> pd.DataFrame:
    return _join_frames([(array, columns)], index)


_STRING_COLUMNS = ("url", "bucket", "id", "title", "file_type", "error")


def _string_columns(array: pa.LargeStringArray, columns: _Columns) -> list[pa.Array]:
    """Return the string columns of one chunk, in the order of _STRING_COLUMNS."""
    n = columns.n
    if columns.errors:
        errors = pa.array(
            [columns.errors.get(i) for i in range(n)], type=pa.large_string()
        )
    else:
        errors = pa.nulls(n, pa.large_string())
    return [
        array,
        _codes_array(columns.bucket_code, columns.buckets),
        _ids_array(columns),
        _title_array(columns),
        _codes_array(columns.file_type_code, columns.file_types),
        errors,
    ]


def _join_frames(
    chunks: list[tuple[pa.LargeStringArray, _Columns]], index: pd.Index | None
) -> pd.DataFrame:
    """Build one DataFrame from the parsed chunks, in order.

    Each string column is one chunked arrow array over all chunks, so no column
    is copied and only one DataFrame is built.
    """
    n = sum(columns.n for _, columns in chunks)
    if index is None:
        index = pd.RangeIndex(n)
    per_chunk = [_string_columns(array, columns) for array, columns in chunks]
    strings = {
        name: pa.chunked_array(
            [arrays[position] for arrays in per_chunk], type=pa.large_string()
        )
        for position, name in enumerate(_STRING_COLUMNS)
    }
    if len(chunks) == 1:
        created_us = chunks[0][1].created_us
    else:
        created_us = np.concatenate([columns.created_us for _, columns in chunks])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
        frame = pd.DataFrame(
            {
                "url": _string_series(strings["url"], index),
                "bucket": _string_series(strings["bucket"], index),
                "created_at": pd.Series(
                    created_us.view("datetime64[us]"), index=index, copy=False
                ),
                "id": _string_series(strings["id"], index),
                "title": _string_series(strings["title"], index),
                "file_type": _string_series(strings["file_type"], index),
                "error": _string_series(strings["error"], index),
            },
            index=index,
        )
    return frame


# ---------------------------------------------------------------------------
# Accessor


class OpennoteSeriesAccessor:
    """``Series.opennote`` accessor that parses a Series of Opennote URLs.

    Registered when :mod:`opennote_jupyter.url_frame` is imported, which
    :func:`opennote_jupyter.parse_video_urls` does on its first call.
    """

    def __init__(self, series: pd.Series) -> None:
        dtype = series.dtype
        if not (
            pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype)
        ):
            raise AttributeError(
                f"the .opennote accessor needs a Series of URL strings, got dtype "
                f"{dtype}: convert it with .astype('string') first"
            )
        self._series = series

    def parse(self, errors: str = "coerce") -> pd.DataFrame:
        """Parse the URLs into a DataFrame with the Series' index.

        Parameters
        ----------
        errors
            ``"coerce"`` or ``"raise"``, as in
            :func:`opennote_jupyter.parse_video_urls`.

        Returns
        -------
        pandas.DataFrame
            One row per URL, as from :func:`opennote_jupyter.parse_video_urls`.
        """
        return parse_video_urls(self._series, errors=errors)


def register_accessor() -> None:
    """Register ``Series.opennote`` unless it is registered already."""
    if "opennote" not in pd.Series._accessors:
        pd.api.extensions.register_series_accessor("opennote")(OpennoteSeriesAccessor)


register_accessor()
