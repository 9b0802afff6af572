"""Replay the SQL dbt-redshift sends to Redshift (``make redshift-plan``, warehouse/redshift_plan.py) on PostgreSQL.

Redshift's SQL is PostgreSQL's plus its own physical design and its own loader. The replay changes exactly this,
and runs every other statement as recorded, in the order recorded:

* :func:`to_postgres` strips the Redshift-only physical clauses (``diststyle``, ``distkey``, ``sortkey`` in
  every form, ``encode``) from ``create table``; the rest of the statement is left byte for byte.
* ``copy <table> from 's3://...'`` runs as ``copy <table> from stdin`` fed with the objects of a local lake
  folder that start with the key (:class:`LakeMapping`), or with ``manifest``, exactly the files the COPY manifest
  at that key lists (Redshift's MANIFEST option): the TSV options translated to PostgreSQL's text format
  (:func:`parse_copy`), ``format as json 'auto'`` as an INSERT of each object's keys that name a column.
  The options it does not know fail the replay instead of being dropped.
* Shims (:data:`SHIMS`, created by :func:`install_shims` once per database) for the Redshift functions the plan
  calls that PostgreSQL lacks:

  - ``strtol(text, integer) -> bigint``: the string read as an integer in the base (2 to 36), as Redshift's
    STRTOL: optional surrounding spaces, a sign, ``0x`` in base 16; an invalid digit or a value outside bigint
    is an error (Redshift's too), NULL in gives NULL out.

:func:`replay` runs phase folders (``<phase>/_sequence.sql``) statement by statement on one connection and
raises :class:`ReplayFailed`, naming the phase, the statement and the dbt node, at the first one PostgreSQL
rejects. dbt's data tests (``... ) dbt_internal_test``) come back with their rows, to check for failures.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlglot.dialects.redshift import Redshift
from sqlglot.tokens import Token, TokenType

SEQUENCE_FILE = "_sequence.sql"  # warehouse/redshift_plan.py's SEQUENCE_FILE: every statement, in order
DATA_TEST_MARK = "dbt_internal_test"  # the alias dbt's test materialization gives the failing rows' query

SHIMS: tuple[str, ...] = (
    """
    create or replace function strtol(num text, base integer) returns bigint
    language plpgsql immutable strict as $$
    declare
        digits constant text := '0123456789abcdefghijklmnopqrstuvwxyz';
        body text := lower(btrim(num));
        negative boolean := false;
        digit integer;
        total bigint := 0;
    begin
        if base < 2 or base > 36 then
            raise exception 'strtol: base % is not between 2 and 36', base;
        end if;
        if left(body, 1) in ('-', '+') then
            negative := left(body, 1) = '-';
            body := substr(body, 2);
        end if;
        if base = 16 and left(body, 2) = '0x' then
            body := substr(body, 3);
        end if;
        if body = '' then
            raise exception 'strtol: % is not a number in base %', quote_literal(num), base;
        end if;
        for position in 1 .. length(body) loop
            digit := strpos(digits, substr(body, position, 1)) - 1;
            if digit < 0 or digit >= base then
                raise exception 'strtol: % is not a number in base %', quote_literal(num), base;
            end if;
            total := total * base + digit;  -- bigint arithmetic: out of range is an error
        end loop;
        return case when negative then -total else total end;
    end
    $$
    """,
    # Redshift's current time, as dbt-redshift's snapshot SQL asks for it: the start of the transaction, as in
    # Redshift, so that every row a statement stamps gets one time.
    """
    create or replace function getdate() returns timestamp language sql stable as $$ select now()::timestamp $$
    """,
)

_DIST_STYLES = {"EVEN", "KEY", "ALL", "AUTO"}
_ENCODINGS = {
    "RAW",
    "AZ64",
    "BYTEDICT",
    "DELTA",
    "DELTA32K",
    "LZO",
    "MOSTLY8",
    "MOSTLY16",
    "MOSTLY32",
    "RUNLENGTH",
    "TEXT255",
    "TEXT32K",
    "ZSTD",
    "AUTO",
}
_NODE = re.compile(r'"(?:node_id|connection_name)":\s*"([^"]+)"')
_LEADING_COMMENTS = re.compile(r"^(\s*/\*.*?\*/)*\s*", re.DOTALL)


class UnsupportedStatement(Exception):
    """A statement (or one of its options) this replay has no PostgreSQL translation for."""


class ReplayFailed(AssertionError):
    """A statement of the plan did not run on PostgreSQL; the message names it."""


# --- statements -------------------------------------------------------------------------------------------


def _tokens(sql: str) -> list[Token]:
    return Redshift().tokenize(sql)


def split_statements(text: str) -> list[str]:
    """The statements of a SQL file, each as written (comments included), split at semicolons outside strings,
    identifiers and comments."""
    statements, start = [], 0
    for token in _tokens(text):
        if token.token_type == TokenType.SEMICOLON:
            statements.append(text[start : token.start])
            start = token.end + 1
    statements.append(text[start:])
    return [s.strip() for s in statements if _tokens(s)]


def _word(token: Token | None) -> str | None:
    """An unquoted word's text in upper case (keywords included); None for strings, quoted names, symbols."""
    if token is None or token.token_type in (TokenType.STRING, TokenType.IDENTIFIER, TokenType.NUMBER):
        return None
    return token.text.upper() if token.text[:1].isalpha() else None


def _closing(tokens: list[Token], opening: int) -> int:
    """The index of the parenthesis that closes the one at ``opening``."""
    depth = 0
    for index in range(opening, len(tokens)):
        if tokens[index].token_type == TokenType.L_PAREN:
            depth += 1
        elif tokens[index].token_type == TokenType.R_PAREN:
            depth -= 1
            if depth == 0:
                return index
    raise UnsupportedStatement("unbalanced parentheses")


def _column_list(tokens: list[Token]) -> tuple[int, int] | None:
    """(first, last) token index of a ``create table name (...)`` column list; None for CTAS and other creates."""
    index = 1
    while index < len(tokens) and _word(tokens[index]) in ("TEMP", "TEMPORARY", "LOCAL"):
        index += 1
    if index >= len(tokens) or _word(tokens[index]) != "TABLE":
        return None
    for opening in range(index + 1, len(tokens)):
        kind = tokens[opening].token_type
        if kind == TokenType.L_PAREN:
            return opening, _closing(tokens, opening)
        if kind == TokenType.ALIAS:  # create table ... as select
            return None
    return None


def to_postgres(statement: str) -> str:
    """The Redshift statement as PostgreSQL runs it: only Redshift's physical clauses are removed.

    In a ``create table`` statement: ``diststyle even|key|all|auto``, ``distkey (...)``, ``[compound |
    interleaved] sortkey (...)``, ``sortkey auto`` and ``encode <encoding>`` after the column list, and the
    column attributes ``encode <encoding>``, ``distkey`` and ``sortkey``. The clauses are found with sqlglot's
    Redshift tokenizer, so text inside strings, quoted names and comments is never touched, and every other
    character of the statement is kept as written. Any other statement is returned unchanged.
    """
    tokens = _tokens(statement)
    if not tokens or tokens[0].token_type != TokenType.CREATE:
        return statement
    columns = _column_list(tokens)
    cuts: list[tuple[int, int]] = []  # token index ranges, inclusive
    depth = 0
    index = 0
    while index < len(tokens):
        in_columns = columns is not None and columns[0] < index < columns[1] and depth == 1
        last = _physical_clause(tokens, index, table_level=depth == 0, in_columns=in_columns)
        if last is not None:
            cuts.append((index, last))
            index = last + 1
            continue
        if tokens[index].token_type == TokenType.L_PAREN:
            depth += 1
        elif tokens[index].token_type == TokenType.R_PAREN:
            depth -= 1
        index += 1
    text = statement
    for first, last in reversed(cuts):
        text = text[: tokens[first].start] + text[tokens[last].end + 1 :]
    return text


def _physical_clause(tokens: list[Token], index: int, *, table_level: bool, in_columns: bool) -> int | None:
    """The index of the last token of the physical clause starting at ``index``, or None if none starts there."""
    word = _word(tokens[index])
    following = tokens[index + 1] if index + 1 < len(tokens) else None
    opens = following is not None and following.token_type == TokenType.L_PAREN
    if (table_level or in_columns) and word == "ENCODE" and _word(following) in _ENCODINGS:
        return index + 1
    if table_level:
        if word == "DISTSTYLE" and _word(following) in _DIST_STYLES:
            return index + 1
        if word in ("DISTKEY", "SORTKEY") and opens:
            return _closing(tokens, index + 1)
        if word == "SORTKEY" and _word(following) == "AUTO":
            return index + 1
        if (
            word in ("COMPOUND", "INTERLEAVED")
            and _word(following) == "SORTKEY"
            and index + 2 < len(tokens)
            and tokens[index + 2].token_type == TokenType.L_PAREN
        ):
            return _closing(tokens, index + 2)
    # A column attribute, never the column's name (which follows "(" or ",").
    if (
        in_columns
        and word in ("DISTKEY", "SORTKEY")
        and tokens[index - 1].token_type not in (TokenType.L_PAREN, TokenType.COMMA)
    ):
        return index
    return None


def install_shims(connection: Any) -> None:
    """Create the :data:`SHIMS` in the connection's database."""
    with connection.cursor() as cursor:
        for shim in SHIMS:
            cursor.execute(shim)
    if not connection.autocommit:
        connection.commit()


# --- COPY -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LakeMapping:
    """The S3 lake the plan's COPYs read (``uri``, e.g. s3://bucket/prefix) and the local folder standing in."""

    uri: str
    root: Path

    def objects(self, source: str) -> list[Path]:
        """Every file whose key starts with ``source``'s key, as COPY takes every object under a key prefix."""
        base = self.uri.rstrip("/") + "/"
        if not source.startswith(base):
            raise UnsupportedStatement(f"COPY from {source}: outside the lake mapped to a folder ({base})")
        prefix = source[len(base) :]
        found = sorted(
            path
            for path in self.root.rglob("*")
            if path.is_file() and path.relative_to(self.root).as_posix().startswith(prefix)
        )
        if not found:
            raise UnsupportedStatement(f"COPY from {source}: no object starts with that key in {self.root}")
        return found

    def listed(self, source: str) -> list[Path]:
        """The files the COPY manifest at ``source`` lists, in its order, as COPY ... MANIFEST reads them.

        Each entry's url is an object of the lake (``s3://bucket/prefix/key``) or, in a manifest a local lake
        wrote (retail_core/lake.py names files by its uri, a path), a file inside the folder. A listed file
        that is missing fails, as on Redshift for a ``mandatory`` entry; the replay refuses an optional one,
        whose absence Redshift would skip silently, rather than guess."""
        manifest = self._path(source)
        if not manifest.is_file():
            raise UnsupportedStatement(f"COPY from {source} manifest: no such object in {self.root}")
        try:
            entries = json.loads(manifest.read_text(encoding="utf-8"))["entries"]
        except (ValueError, KeyError, TypeError) as error:
            raise UnsupportedStatement(
                f"COPY from {source} manifest: not a COPY manifest ({error})"
            ) from None
        files = []
        for entry in entries:
            if entry.get("mandatory") is not True:
                raise UnsupportedStatement(f"COPY manifest {source}: an entry not mandatory: {entry}")
            path = self._path(entry["url"])
            if not path.is_file():
                raise UnsupportedStatement(f"COPY manifest {source} lists {entry['url']}, which is not there")
            files.append(path)
        if not files:
            raise UnsupportedStatement(f"COPY manifest {source} lists no file")
        return files

    def _path(self, url: str) -> Path:
        """The local file standing in for ``url``: an s3:// key of the lake, or a path inside the folder."""
        base = self.uri.rstrip("/") + "/"
        if url.startswith(base):
            return self.root / url[len(base) :]
        path = Path(url)
        if path.is_absolute() and path.resolve().is_relative_to(self.root.resolve()):
            return path
        raise UnsupportedStatement(f"{url}: outside the lake mapped to a folder ({base})")


@dataclass(frozen=True)
class CopyStatement:
    """A Redshift ``copy``: the table and column list as written, the column names, the S3 source, the options in
    order (upper-case names; the value as written, or None for a flag)."""

    table: str
    column_list: str | None
    columns: tuple[str, ...]
    source: str
    options: tuple[tuple[str, str | None], ...]

    def option(self, name: str) -> str | None:
        return next((value for key, value in self.options if key == name), None)

    def has(self, name: str) -> bool:
        return any(key == name for key, _ in self.options)


_WORD_VALUED = {"ENCODING", "IAM_ROLE", "REGION"}
_ACCESS_OPTIONS = {"IAM_ROLE", "CREDENTIALS", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "SESSION_TOKEN", "REGION"}
_TEXT_OPTIONS = {"DELIMITER", "IGNOREHEADER", "EMPTYASNULL", "NULL", "TIMEFORMAT", "DATEFORMAT", "ENCODING"}
# NULL AS: only NUL is translated (a string that never occurs in the data, so nothing but an empty field is NULL).
_NUL_STRINGS = {"\\000", "\\0", "\x00"}
_ISO_FORMATS = {"TIMEFORMAT": {"auto", "YYYY-MM-DD HH:MI:SS"}, "DATEFORMAT": {"auto", "YYYY-MM-DD"}}
# Which files are read, not how they are parsed: copy_from_lake picks them (LakeMapping.listed) before the format.
_SOURCE_OPTIONS = {"MANIFEST"}


def parse_copy(statement: str) -> CopyStatement | None:
    """The COPY in ``statement``, or None when it is another statement."""
    tokens = _tokens(statement)
    if not tokens or tokens[0].token_type != TokenType.COPY:
        return None
    index = 1
    while index < len(tokens) and tokens[index].token_type not in (TokenType.L_PAREN, TokenType.FROM):
        index += 1
    table = statement[tokens[1].start : tokens[index - 1].end + 1]
    column_list, columns = None, []
    if index < len(tokens) and tokens[index].token_type == TokenType.L_PAREN:
        closing = _closing(tokens, index)
        column_list = statement[tokens[index].start : tokens[closing].end + 1]
        columns = [t.text for t in tokens[index + 1 : closing] if t.token_type != TokenType.COMMA]
        index = closing + 1
    if index + 1 >= len(tokens) or tokens[index].token_type != TokenType.FROM:
        raise UnsupportedStatement("COPY without FROM '<source>'")
    source_token = tokens[index + 1]
    if source_token.token_type != TokenType.STRING:
        raise UnsupportedStatement("COPY FROM something other than a quoted S3 key")
    index += 2
    options: list[tuple[str, str | None]] = []
    while index < len(tokens):
        name = tokens[index].text.upper()
        index += 1
        if index < len(tokens) and tokens[index].token_type == TokenType.ALIAS:  # DELIMITER AS '|'
            index += 1
        if name == "FORMAT":  # FORMAT [AS] JSON 'auto' is JSON 'auto'
            name = tokens[index].text.upper()
            index += 1
        value = None
        if index < len(tokens):
            following = tokens[index]
            if following.token_type in (TokenType.STRING, TokenType.NUMBER) or (
                name in _WORD_VALUED and _word(following)
            ):
                value = following.text
                index += 1
        options.append((name, value))
    return CopyStatement(
        table=table,
        column_list=column_list,
        columns=tuple(columns),
        source=source_token.text,
        options=tuple(options),
    )


def _check_options(copy: CopyStatement, known: set[str]) -> None:
    for name, value in copy.options:
        if name in _ACCESS_OPTIONS:
            continue  # who may read S3, not what is read
        if name in _SOURCE_OPTIONS:
            if value is not None:
                raise UnsupportedStatement(f"COPY {name} '{value}': the option takes no value")
            continue
        if name not in known:
            raise UnsupportedStatement(f"COPY option {name} has no PostgreSQL translation in this replay")
        if name in _ISO_FORMATS and value not in _ISO_FORMATS[name]:
            raise UnsupportedStatement(f"COPY {name} '{value}': only ISO input is translated")
        if name == "ENCODING" and (value or "").upper() not in ("UTF8", "UTF-8"):
            raise UnsupportedStatement(f"COPY ENCODING {value}: only UTF8 is translated")


def copy_from_lake(cursor: Any, copy: CopyStatement, lake: LakeMapping) -> int:
    """Run a Redshift COPY on PostgreSQL with the lake's files; returns the rows loaded.

    Text (the only non-JSON format translated): Redshift reads fields literally unless ESCAPE is given, and
    PostgreSQL's text format treats a backslash as an escape, so the data's backslashes are doubled. DELIMITER
    becomes the same DELIMITER, EMPTYASNULL ``NULL ''`` (with NULL AS '\\000', which no field holds), IGNOREHEADER n
    drops n lines of every file; ISO
    TIMEFORMAT/DATEFORMAT are what PostgreSQL reads anyway. Without EMPTYASNULL an empty field is '' for text
    and NULL for other types on Redshift, which PostgreSQL cannot say: that is refused, like every unknown option.
    """
    from psycopg2 import sql

    files = lake.listed(copy.source) if copy.has("MANIFEST") else lake.objects(copy.source)
    if copy.has("JSON"):
        return _copy_json(cursor, copy, files)
    _check_options(copy, _TEXT_OPTIONS)
    if not copy.has("EMPTYASNULL"):
        raise UnsupportedStatement(
            "COPY without EMPTYASNULL: Redshift's empty fields have no PostgreSQL twin"
        )
    if copy.option("NULL") not in _NUL_STRINGS:
        # Redshift's default null string is \N: a field that is exactly \N would load as NULL there, as '\N' here.
        raise UnsupportedStatement(
            f"COPY NULL AS {copy.option('NULL')!r}: only NUL ('\\000') is translated; without NULL AS, "
            "Redshift loads a field \\N as NULL"
        )
    delimiter = (
        (copy.option("DELIMITER") or "|").encode("latin-1", "backslashreplace").decode("unicode_escape")
    )
    header_lines = int(copy.option("IGNOREHEADER") or 0)
    data = io.StringIO()
    for path in files:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)[header_lines:]
        for line in lines:
            data.write(line.replace("\\", "\\\\"))
        if lines and not lines[-1].endswith("\n"):
            data.write("\n")
    data.seek(0)
    statement = sql.SQL("copy {table}{columns} from stdin with (format text, delimiter {delimiter}, null '')")
    cursor.copy_expert(
        statement.format(
            table=sql.SQL(copy.table),
            columns=sql.SQL(f" {copy.column_list}" if copy.column_list else ""),
            delimiter=sql.Literal(delimiter),
        ).as_string(cursor),
        data,
    )
    return int(cursor.rowcount)


def _copy_json(cursor: Any, copy: CopyStatement, files: list[Path]) -> int:
    """``format as json 'auto'``: every object in the files becomes a row of its keys that name a column (of the
    COPY's column list, else of the table; exactly, or ignoring case for 'auto ignorecase'); a nested value is
    stored as its JSON text, a missing key as NULL."""
    from psycopg2 import sql

    _check_options(copy, {"JSON", "ENCODING"})
    mode = (copy.option("JSON") or "").lower()
    if mode not in ("auto", "auto ignorecase"):
        raise UnsupportedStatement(f"COPY JSON '{mode}': only 'auto' (a JSONPaths file is not) is translated")
    columns = list(copy.columns)
    if not columns:
        cursor.execute(
            "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0 and not attisdropped "
            "order by attnum",
            (copy.table,),
        )
        columns = [name for (name,) in cursor.fetchall()]
    rows = 0
    for path in files:
        for document in _json_objects(path.read_text(encoding="utf-8")):
            keys = {(k.lower() if mode == "auto ignorecase" else k): v for k, v in document.items()}
            names = [name for name in columns if name in keys]
            values = [json.dumps(keys[n]) if isinstance(keys[n], dict | list) else keys[n] for n in names]
            insert = sql.SQL("insert into {table} ({names}) values ({values})").format(
                table=sql.SQL(copy.table),
                names=sql.SQL(", ").join(map(sql.Identifier, names)),
                values=sql.SQL(", ").join(sql.Placeholder() * len(names)),
            )
            cursor.execute(insert, values)
            rows += 1
    return rows


def _json_objects(text: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of a file, one after the other (Redshift's JSON input: objects, not an array)."""
    decoder, index = json.JSONDecoder(), 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return
        document, index = decoder.raw_decode(text, index)
        if not isinstance(document, dict):
            raise UnsupportedStatement("COPY JSON: the file holds something other than objects")
        yield document


# --- replay -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Executed:
    """One statement of the plan as it ran: its place, its dbt node, and the rows it returned (if any)."""

    phase: str
    number: int  # 1-based, in the phase's _sequence.sql
    node: str | None
    sql: str  # as recorded
    rows: list[tuple[Any, ...]] | None = None

    @property
    def is_data_test(self) -> bool:
        return DATA_TEST_MARK in self.sql

    @property
    def kind(self) -> str:
        """The statement's first word, e.g. CREATE, MERGE, COPY."""
        tokens = _tokens(self.sql)
        return tokens[0].text.upper() if tokens else ""


@dataclass
class PhaseResult:
    phase: str
    folder: Path
    executed: list[Executed] = field(default_factory=list)

    @property
    def data_tests(self) -> list[Executed]:
        return [e for e in self.executed if e.is_data_test]


def phase_name(folder: Path) -> str:
    """``<plan>/<phase>``, e.g. ``day_2/incremental_build``: how messages name a phase folder."""
    return f"{folder.parent.name}/{folder.name}"


def replay(connection: Any, phases: Sequence[Path], lake: LakeMapping) -> Iterator[PhaseResult]:
    """Run each phase folder's ``_sequence.sql``, in the order given, statement by statement on ``connection``
    (autocommit: the plan's own BEGIN and COMMIT make the transactions); yields each phase once it ran.

    Raises ReplayFailed at the first statement PostgreSQL rejects or this replay cannot translate.
    """
    if not connection.autocommit:
        raise ValueError("replay needs an autocommit connection: the plan sends its own BEGIN and COMMIT")
    for folder in phases:
        path = folder / SEQUENCE_FILE
        if not path.is_file():
            raise ReplayFailed(f"{phase_name(folder)}: no {SEQUENCE_FILE} (render the plan first)")
        result = PhaseResult(phase_name(folder), folder)
        for number, statement in enumerate(split_statements(path.read_text(encoding="utf-8")), start=1):
            named = _NODE.search(statement[:2000])
            node = named.group(1) if named else None  # BEGIN and COMMIT carry no query comment
            result.executed.append(_execute(connection, result.phase, number, node, statement, lake))
        yield result


def _execute(
    connection: Any, phase: str, number: int, node: str | None, statement: str, lake: LakeMapping
) -> Executed:
    import psycopg2

    try:
        with connection.cursor() as cursor:
            copy = parse_copy(statement)
            if copy is not None:
                copy_from_lake(cursor, copy, lake)
                return Executed(phase, number, node, statement)
            cursor.execute(to_postgres(statement))
            rows = cursor.fetchall() if cursor.description is not None else None
            return Executed(phase, number, node, statement, rows)
    except (psycopg2.Error, UnsupportedStatement) as error:
        reason = (getattr(error, "pgerror", None) or str(error)).strip().splitlines()[0]
        raise ReplayFailed(
            f"{phase} statement {number} ({node or 'no dbt node'}) failed on PostgreSQL: {reason}\n"
            f"{_excerpt(statement)}"
        ) from error


def _excerpt(statement: str, lines: int = 12) -> str:
    body = [line for line in _LEADING_COMMENTS.sub("", statement).splitlines() if line.strip()]
    return "\n".join(body[:lines]) + ("\n..." if len(body) > lines else "")
