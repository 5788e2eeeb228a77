"""Text sources: where documents come from, and what to do when a file is malformed.

A source is a small object that lists its files (``files()``, for cache keys and
file-level splits) and yields :class:`Document` records (``documents()``). Every
reader reports a malformed input as a :class:`DataError` naming the file and line,
or, when built with ``on_error="skip"``, logs a warning with the same location and
goes on.

Decision a reader may question: problems are reported through ``logging`` rather
than ``warnings.warn``. A bad line in a user's data is an event in a data run, not
an API misuse; ``warnings`` would also deduplicate identical messages (hiding the
second bad file) and turn into errors under ``-W error``.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

log = logging.getLogger("forgather.ml.data")

OnError = Literal["raise", "skip"]


class DataError(ValueError):
    """A data file that cannot be read as asked; the message starts with ``file:line:``.

    Attributes:
        path: the offending file.
        line: 1-based line number, or None when the problem is the whole file.
    """

    def __init__(self, path: str | os.PathLike, line: int | None, problem: str):
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class Document:
    """One document of a source.

    Attributes:
        file_index: index into the source's ``files()`` list.
        ordinal: position of the document within its file (0 for one-document files).
        text: the document's text.
    """

    file_index: int
    ordinal: int
    text: str


@dataclass(frozen=True)
class SourceFile:
    """A file of a source: ``path`` to open, ``name`` stable across machines (for splits)."""

    path: Path
    name: str


class TextSource(Protocol):
    """What the tokenizer trainer and the tokenization cache need from a source."""

    def files(self) -> list[SourceFile]:
        """The files read, in a fixed order (``Document.file_index`` indexes this list)."""
        ...

    def describe(self) -> dict:
        """JSON-able parameters that change what ``documents()`` yields."""
        ...

    def documents(self) -> Iterator[Document]:
        """The documents, in a fixed order."""
        ...


@functools.lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern:
    """Compile a path glob: ``*`` and ``?`` stay within one path component, ``**``
    spans any number of components (``**/x`` also matches a top-level ``x``)."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")


def glob_match(name: str, pattern: str) -> bool:
    """Whether the relative path ``name`` (``/``-separated) matches ``pattern``.

    >>> glob_match("a/b/c.py", "**/*.py"), glob_match("a/b/c.py", "*.py")
    (True, False)
    >>> glob_match("lib/tests/t.py", "**/tests/**")
    True
    """
    return _glob_regex(pattern).match(name) is not None


def _walk(
    root: Path, pattern: str, exclude: Sequence[str], include: Sequence[str]
) -> list[SourceFile]:
    # os.walk rather than Path.glob: excluded directories (a stdlib's site-packages
    # holds ten times the stdlib's files) are pruned instead of listed and filtered.
    pruned = [x[:-3] for x in exclude if x.endswith("/**")]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel == "." else rel + "/"
        dirnames[:] = sorted(
            d for d in dirnames if not any(glob_match(prefix + d, x) for x in pruned)
        )
        for filename in sorted(filenames):
            name = prefix + filename
            if not glob_match(name, pattern):
                continue
            if include and not any(glob_match(name, x) for x in include):
                continue
            if any(glob_match(name, x) for x in exclude):
                continue
            found.append(SourceFile(Path(dirpath) / filename, name))
    # Sorted by name so the order does not depend on how the walk interleaves levels.
    return sorted(found, key=lambda f: f.name)


def expand_paths(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    pattern: str,
    exclude: Sequence[str] = (),
    include: Sequence[str] = (),
) -> list[SourceFile]:
    """Expand files and directories into a sorted list of files.

    Args:
        paths: files or directories; directories are searched recursively.
        pattern: glob on the path relative to the directory (:func:`glob_match`):
            ``"**/*.txt"`` at any depth, ``"*.txt"`` only at the top.
        exclude: globs of relative paths to leave out (``"**/tests/**"`` drops
            every ``tests`` folder).
        include: when given, keep only relative paths matching one of these globs.

    Returns:
        Files in a deterministic order: each argument in turn, directory contents sorted.
        A file's ``name`` is its path relative to the directory it was found in, or its
        base name when given directly.

    Raises:
        DataError: a path does not exist, or a directory holds no matching file.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    found: list[SourceFile] = []
    for raw in paths:
        root = Path(raw).expanduser()
        if root.is_file():
            found.append(SourceFile(root, root.name))
        elif root.is_dir():
            matches = _walk(root, pattern, exclude, include)
            if not matches:
                raise DataError(root, None, f"directory has no files matching {pattern!r}")
            found.extend(matches)
        else:
            raise DataError(root, None, "no such file or directory")
    return found


def file_signature(files: Iterable[SourceFile]) -> list[list]:
    """Name, size and modification time (ns) of each file: what a cache key needs to see."""
    signature = []
    for f in files:
        st = f.path.stat()
        signature.append([str(f.path.resolve()), st.st_size, st.st_mtime_ns])
    return signature


def _report(on_error: OnError, error: DataError) -> None:
    if on_error == "raise":
        raise error
    log.warning("skipped: %s", error)


def _decode(path: Path, data: bytes, first_line: int = 1) -> str:
    """Decode UTF-8, turning a decode failure into a DataError with line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = first_line + data.count(b"\n", 0, err.start)
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(
            path, line, f"not valid UTF-8 (byte 0x{data[err.start]:02x} at column {column})"
        ) from None


class TextFiles:
    """Plain text files: one document per file, or per ``separator``-delimited piece.

    Args:
        paths: files and/or directories.
        pattern: glob used inside directories (default every ``*.txt``).
        exclude: globs of directory-relative paths to leave out (:func:`glob_match`).
        include: when given, only directory-relative paths matching one of these.
        separator: when set (e.g. ``"\\n\\n\\n"``; ``"\\n"`` for one document per line),
            each file is cut into documents here.
        on_error: ``"raise"`` a DataError on a missing/empty/non-UTF-8 file, or
            ``"skip"`` it with a logged warning.
        skip_empty_in_dirs: files found by a directory scan that are empty are skipped
            silently (a package's empty ``__init__.py`` is not a mistake); an empty file
            named directly is always reported.
    """

    kind = "text"

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        pattern: str = "**/*.txt",
        exclude: Sequence[str] = (),
        include: Sequence[str] = (),
        separator: str | None = None,
        on_error: OnError = "raise",
        skip_empty_in_dirs: bool = True,
    ):
        self.paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        self.pattern = pattern
        self.exclude = tuple(exclude)
        self.include = tuple(include)
        self.separator = separator
        self.on_error: OnError = on_error
        self.skip_empty_in_dirs = skip_empty_in_dirs
        self._files: list[SourceFile] | None = None

    def files(self) -> list[SourceFile]:
        if self._files is None:
            self._files = expand_paths(self.paths, self.pattern, self.exclude, self.include)
        return self._files

    def describe(self) -> dict:
        """The parameters that change what ``documents()`` yields (for cache keys)."""
        return {"kind": self.kind, "separator": self.separator, "on_error": self.on_error}

    def documents(self) -> Iterator[Document]:
        for index, f in enumerate(self.files()):
            data = f.path.read_bytes()
            if not data.strip():
                if self.skip_empty_in_dirs and f.name != f.path.name:
                    continue
                _report(self.on_error, DataError(f.path, None, "file is empty"))
                continue
            try:
                text = _decode(f.path, data)
            except DataError as err:
                _report(self.on_error, err)
                continue
            pieces = text.split(self.separator) if self.separator else [text]
            ordinal = 0
            for piece in pieces:
                if piece.strip():
                    yield Document(index, ordinal, piece)
                    ordinal += 1


class _RecordFiles:
    """Files of records whose text is one field: what JSONL and Parquet sources share."""

    kind = "records"
    default_pattern = "**/*"

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        text_field: str = "text",
        pattern: str | None = None,
        on_error: OnError = "raise",
    ):
        self.paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
        self.text_field = text_field
        self.pattern = pattern or self.default_pattern
        self.on_error: OnError = on_error
        self._files: list[SourceFile] | None = None

    def files(self) -> list[SourceFile]:
        if self._files is None:
            self._files = expand_paths(self.paths, self.pattern)
        return self._files

    def describe(self) -> dict:
        return {"kind": self.kind, "text_field": self.text_field, "on_error": self.on_error}


class JsonlFiles(_RecordFiles):
    """JSON Lines files: one JSON object per line, its ``text_field`` is the document.

    Blank lines are ignored. A line that is not JSON, not an object, lacks the field,
    or holds a non-string there is a DataError naming file and line (or a logged
    warning with ``on_error="skip"``).
    """

    kind = "jsonl"

    default_pattern = "**/*.jsonl"

    def _parse(self, path: Path, lineno: int, raw: bytes) -> str:
        line = _decode(path, raw, lineno).rstrip("\r\n")
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(path, lineno, f"invalid JSON: {err.msg} (column {err.colno})") from None
        if not isinstance(record, dict):
            raise DataError(path, lineno, f"expected a JSON object, got {type(record).__name__}")
        if self.text_field not in record:
            raise DataError(
                path, lineno, f"no field {self.text_field!r} (fields: {sorted(record)})"
            )
        text = record[self.text_field]
        if not isinstance(text, str):
            raise DataError(
                path, lineno, f"field {self.text_field!r} is {type(text).__name__}, not a string"
            )
        return text

    def documents(self) -> Iterator[Document]:
        for index, f in enumerate(self.files()):
            ordinal = 0
            with open(f.path, "rb") as stream:
                for lineno, raw in enumerate(stream, start=1):
                    if not raw.strip():
                        continue
                    try:
                        text = self._parse(f.path, lineno, raw)
                    except DataError as err:
                        _report(self.on_error, err)
                        continue
                    yield Document(index, ordinal, text)
                    ordinal += 1
            if ordinal == 0:
                _report(self.on_error, DataError(f.path, None, "file has no documents"))


class ParquetFiles(_RecordFiles):
    """Parquet files: the string column ``text_field``, one document per row.

    Read with ``pyarrow`` (a dependency of ``datasets``) in record batches, so a
    large file is never held in memory as Python strings all at once.
    """

    kind = "parquet"

    default_pattern = "**/*.parquet"

    def documents(self) -> Iterator[Document]:
        import pyarrow.parquet as pq

        for index, f in enumerate(self.files()):
            try:
                table = pq.ParquetFile(f.path)
            except Exception as err:  # pyarrow raises several types for a corrupt file
                _report(self.on_error, DataError(f.path, None, f"not a Parquet file ({err})"))
                continue
            if self.text_field not in table.schema_arrow.names:
                _report(
                    self.on_error,
                    DataError(
                        f.path,
                        None,
                        f"no column {self.text_field!r} (columns: {table.schema_arrow.names})",
                    ),
                )
                continue
            row = 0
            for batch in table.iter_batches(columns=[self.text_field], batch_size=4096):
                for text in batch.column(0).to_pylist():
                    # Parquet has no lines: the "line" reported is the 1-based row number.
                    if not isinstance(text, str):
                        _report(
                            self.on_error, DataError(f.path, row + 1, f"row has no text ({text!r})")
                        )
                    elif text:
                        yield Document(index, row, text)
                    row += 1


class CsvFiles(_RecordFiles):
    """CSV files with a header row: the column ``text_field`` of each row is a document.

    Read with the standard ``csv`` module (quoted fields may span lines). A row
    without the column, or a file whose header lacks it, is a DataError naming the
    file and the row's first line (or a logged warning with ``on_error="skip"``).
    """

    kind = "csv"

    default_pattern = "**/*.csv"

    def documents(self) -> Iterator[Document]:
        import csv

        for index, f in enumerate(self.files()):
            ordinal = 0
            try:
                text_of_file = _decode(f.path, f.path.read_bytes())
            except DataError as err:
                _report(self.on_error, err)
                continue
            reader = csv.DictReader(text_of_file.splitlines(keepends=True))
            try:
                header = reader.fieldnames or []
            except csv.Error as err:
                _report(self.on_error, DataError(f.path, 1, f"invalid CSV header ({err})"))
                continue
            if self.text_field not in header:
                _report(
                    self.on_error,
                    DataError(f.path, 1, f"no column {self.text_field!r} (columns: {header})"),
                )
                continue
            line = reader.line_num + 1
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    break
                except csv.Error as err:
                    _report(self.on_error, DataError(f.path, line, f"invalid CSV ({err})"))
                    line = reader.line_num + 1
                    continue
                text = row.get(self.text_field)
                if text is None:
                    _report(self.on_error, DataError(f.path, line, "row is too short"))
                elif text.strip():
                    yield Document(index, ordinal, text)
                    ordinal += 1
                line = reader.line_num + 1
            if ordinal == 0:
                _report(self.on_error, DataError(f.path, None, "file has no documents"))


class SavedDataset:
    """A ``datasets.Dataset`` (or one split of a ``DatasetDict``) saved with ``save_to_disk``.

    Its files (the Arrow shards and state files in the directory) form the cache key;
    documents are rows of ``text_field``, ordinal = row index.
    """

    kind = "saved_dataset"

    def __init__(self, path: str | os.PathLike, split: str | None = None, text_field: str = "text"):
        self.path = Path(path).expanduser()
        self.split = split
        self.text_field = text_field
        self._files: list[SourceFile] | None = None

    def files(self) -> list[SourceFile]:
        if self._files is None:
            if not self.path.is_dir():
                raise DataError(
                    self.path, None, "no such dataset directory (expected save_to_disk output)"
                )
            self._files = expand_paths([self.path], "**/*")
        return self._files

    def describe(self) -> dict:
        return {"kind": self.kind, "split": self.split, "text_field": self.text_field}

    def documents(self) -> Iterator[Document]:
        import datasets

        loaded = datasets.load_from_disk(str(self.path))
        if isinstance(loaded, datasets.DatasetDict):
            if self.split is None:
                raise DataError(
                    self.path, None, f"holds splits {list(loaded)}: name one with split="
                )
            loaded = loaded[self.split]
        if self.text_field not in loaded.column_names:
            raise DataError(
                self.path, None, f"no column {self.text_field!r} (columns: {loaded.column_names})"
            )
        column = loaded.select_columns([self.text_field])
        for start in range(0, len(column), 4096):
            for offset, text in enumerate(column[start : start + 4096][self.text_field]):
                if text:
                    # All rows share file_index 0: the directory is one unit for file-level splits.
                    yield Document(0, start + offset, text)


FORMATS = ("auto", "text", "jsonl", "parquet", "csv", "saved_dataset")


def _guess_format(path: Path) -> str:
    if path.is_dir():
        if (path / "dataset_info.json").is_file() or (path / "dataset_dict.json").is_file():
            return "saved_dataset"
        suffixes = {p.suffix for p in path.rglob("*") if p.is_file()}
        for fmt, suffix in (("jsonl", ".jsonl"), ("parquet", ".parquet"), ("csv", ".csv")):
            if suffix in suffixes:
                return fmt
        return "text"
    return {".jsonl": "jsonl", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix, "text")


def open_source(
    paths: str | os.PathLike | Sequence[str | os.PathLike],
    format: str = "auto",
    text_field: str = "text",
    pattern: str | None = None,
    on_error: OnError = "raise",
    split: str | None = None,
    separator: str | None = None,
    lines: bool = False,
) -> TextSource:
    """A source for local data given by path, its kind guessed from the first path.

    Args:
        paths: files or directories (one directory for ``saved_dataset``).
        format: ``"text"``, ``"jsonl"``, ``"parquet"``, ``"csv"``, ``"saved_dataset"`` (a
            ``save_to_disk`` directory), or ``"auto"``: by suffix, or for a directory
            by the files in it.
        text_field: the JSON field / column holding the text.
        pattern: glob used inside directories; default ``**/*.<format suffix>``.
        on_error: ``"raise"`` or ``"skip"`` (with a logged warning) malformed inputs.
        split: the split of a saved ``DatasetDict``.
        separator: text files only: cut each file into documents at this string
            (``"\\n\\n"``: one document per paragraph); None keeps one per file.
        lines: text files only: one document per non-blank line (``separator="\\n"``).

    Raises:
        DataError: a path does not exist.
        ValueError: an unknown format.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise ValueError("no input paths given")
    first = Path(items[0]).expanduser()
    if not first.exists():
        raise DataError(first, None, "no such file or directory")
    if format == "auto":
        format = _guess_format(first)
    if lines:
        if separator not in (None, "\n"):
            raise ValueError("give either lines=True or a separator, not both")
        separator = "\n"
    if separator is not None and format != "text":
        raise ValueError(f"separator and lines apply to text files, not {format}")
    if format == "text":
        return TextFiles(
            items, pattern=pattern or "**/*.txt", separator=separator, on_error=on_error
        )
    if format == "jsonl":
        return JsonlFiles(items, text_field, pattern=pattern or "**/*.jsonl", on_error=on_error)
    if format == "parquet":
        return ParquetFiles(items, text_field, pattern=pattern or "**/*.parquet", on_error=on_error)
    if format == "csv":
        return CsvFiles(items, text_field, pattern=pattern or "**/*.csv", on_error=on_error)
    if format == "saved_dataset":
        if len(items) != 1:
            raise ValueError("a saved dataset is one directory")
        return SavedDataset(first, split=split, text_field=text_field)
    raise ValueError(f"unknown data format {format!r}; expected one of {FORMATS}")
