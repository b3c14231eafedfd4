"""The database every part of wulian keeps its state in, and its versioned schema.

A SQLite file by default, any SQLAlchemy URL (``postgresql+psycopg://…``) for a shared store.
The schema is Alembic's (``planning/migrations/``): :func:`open_engine` brings a store up to the
newest revision when it is opened, and ``wulian db upgrade`` does the same on demand. A store
made before the schema was versioned (runs, scenarios, jobs and tokens, created directly) is
taken as the baseline revision: its tables are kept with their rows and the newer revisions
are applied on top.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import operator
import threading
from collections.abc import Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets status reads go on while a worker writes; a busy writer waits instead of failing.
    # With WAL, synchronous=NORMAL still keeps every committed transaction through a crash of
    # the process (only a power cut may lose the last ones), and it spares a sync per commit.
    # The page cache (SQLite's default is 2 MiB) is what a city's register needs to insert
    # its million rows into keyed tables without re-reading pages: up to 64 MiB, taken as used.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute("PRAGMA temp_store=MEMORY")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _config():
    from alembic.config import Config  # (Alembic is imported only to change a schema)

    config = Config()
    config.set_main_option("script_location",
                           str(resources.files("wulian.planning").joinpath("migrations")))
    return config


@functools.cache
def head() -> str:
    """The newest revision of the schema this wulian knows. The migrations are numbered in
    order, each file (``0006_needs_watched.py``) named by its revision, so the newest is read
    from their names without Alembic (a test holds it to Alembic's own reading)."""
    versions = resources.files("wulian.planning").joinpath("migrations", "versions")
    return max((entry.name.split("_")[0] for entry in versions.iterdir()
                if entry.name.endswith(".py") and entry.name[:4].isdigit()), default="")


def revision(engine: sa.Engine) -> str | None:
    """The store's schema revision; ``None`` for an empty store or one made before versions."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def upgrade(engine: sa.Engine, target: str = "head") -> tuple[str | None, str | None]:
    """Bring the store's schema to ``target``; returns (revision before, revision after)."""
    from alembic import command

    with _lock:  # Alembic's command API keeps module-level state: one upgrade at a time
        before = revision(engine)
        config = _config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, target)
        return before, revision(engine)


def open_engine(url: str, *, migrate: bool = True) -> sa.Engine:
    """An engine on the store at ``url``, its schema brought to the newest revision."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        # A connection may be used by another thread than the one that made it, one thread
        # at a time (a week's close settles its tasks in a thread of its own); SQLAlchemy
        # already allows it for a file, not for an in-memory database.
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True)
    if migrate and revision(engine) != head():
        upgrade(engine)
    return engine


def param_mark(conn: sa.Connection) -> str:
    """The driver's placeholder for one parameter in a raw statement (psycopg: ``%s``)."""
    return "%s" if conn.dialect.paramstyle in ("format", "pyformat") else "?"


# The parameters one statement may hold in SQLite built with its defaults, old ones too (999
# before SQLite 3.32; PostgreSQL takes 65,535): a bulk insert writes as many rows a statement
# as fit.
MAX_PARAMETERS = 999


def bulk_insert(conn: sa.Connection, table: sa.Table,
                rows: list[dict] | pd.DataFrame | Mapping[str, object]) -> None:
    """Insert many rows straight through the driver (a city's register is millions of rows;
    SQLAlchemy's per-row parameter handling would cost more than the database): on
    PostgreSQL one ``COPY``, elsewhere ``executemany``, many rows a statement. Rows are dicts
    with the same keys, the columns to fill (an autoincrement key left out is numbered by the
    database, in the rows' order), a frame of them, or a mapping of column to its values (a
    list, or one value for every row): no dict per row."""
    if isinstance(rows, pd.DataFrame):
        columns = [c.name for c in table.columns if c.name in rows.columns]
        width = [rows[c].tolist() for c in columns]
    elif isinstance(rows, Mapping):
        columns = [c.name for c in table.columns if c.name in rows]
        count = max((len(v) for v in rows.values() if isinstance(v, list | tuple)), default=0)
        width = [rows[c] if isinstance(rows[c], list | tuple) else itertools.repeat(rows[c], count)
                 for c in columns]
    else:
        columns = [c.name for c in table.columns if rows and c.name in rows[0]]
        width = [[r[c] for r in rows] for c in columns]
    if not columns:
        return
    if conn.dialect.name == "postgresql":
        _copy_rows(conn, conn.dialect.identifier_preparer.format_table(table), columns,
                   zip(*width, strict=True))
        return
    # Every value in one list, row after row, cut into statements of ``per`` rows each: one
    # statement stepped per ``per`` rows (SQLite's cost per statement was a third of the
    # import's 1.6 M events' CPU).
    flat = list(itertools.chain.from_iterable(zip(*width, strict=True)))
    size = len(columns)
    per = max(1, MAX_PARAMETERS // size)
    full = len(flat) // (per * size) * per * size
    quote = conn.dialect.identifier_preparer.quote
    head = (f"INSERT INTO {conn.dialect.identifier_preparer.format_table(table)} "
            f"({', '.join(quote(c) for c in columns)}) VALUES ")
    one = f"({', '.join([param_mark(conn)] * size)})"
    grouped = list(zip(*[iter(flat[:full])] * (per * size), strict=False))
    for start in range(0, len(grouped), 1000):
        conn.exec_driver_sql(head + ", ".join([one] * per), grouped[start:start + 1000])
    if full < len(flat):
        conn.exec_driver_sql(head + ", ".join([one] * ((len(flat) - full) // size)),
                             tuple(flat[full:]))


@contextlib.contextmanager
def indexes_made_after(conn: sa.Connection, tables: Iterable[sa.Table]) -> Iterator[None]:
    """Around a bulk load in the caller's transaction (a first import): on PostgreSQL, the
    indexes of those ``tables`` that hold no row yet (their keys and unique constraints too,
    unless a foreign key refers to one) are dropped for the block and made again, as they
    were defined, at its end — one sort each instead of a city's million rows entered one by
    one into each index. All in the one transaction: a failed or killed load leaves them as
    they were; a key given twice fails the load at the end rather than at its row. (Dropping
    an index locks its table until the commit: readers of those empty tables wait for the
    load instead of reading them empty.) Elsewhere nothing changes: SQLite fills its indexes
    as fast either way (docs/benchmarks.md, session 13)."""
    if conn.dialect.name != "postgresql":
        yield
        return
    quote = conn.dialect.identifier_preparer.quote
    made_again = []
    for table in tables:
        if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
            continue
        target = conn.dialect.identifier_preparer.format_table(table)
        for name, definition in conn.execute(sa.text(
                "SELECT c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                "WHERE c.conrelid = CAST(:table AS regclass) AND c.contype IN ('p', 'u') "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.contype = 'f' "
                "AND f.conindid = c.conindid) ORDER BY c.conname"), {"table": target}):
            conn.exec_driver_sql(f"ALTER TABLE {target} DROP CONSTRAINT {quote(name)}")
            made_again.append(f"ALTER TABLE {target} ADD CONSTRAINT {quote(name)} {definition}")
        for name, definition in conn.execute(sa.text(
                "SELECT CAST(CAST(i.indexrelid AS regclass) AS text), "
                "pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "WHERE i.indrelid = CAST(:table AS regclass) AND NOT i.indisunique "
                "ORDER BY 1"), {"table": target}):
            conn.exec_driver_sql(f"DROP INDEX {name}")  # (its name as SQL, quoted)
            made_again.append(definition)
    yield
    for statement in made_again:
        conn.exec_driver_sql(statement)


# From this many rows a PostgreSQL update goes through a copied temporary table: fewer (a
# volunteer's answer, an alert refreshed) are plain statements, without a table made and
# dropped for each.
COPY_UPDATE_ROWS = 1_000


def bulk_update(conn: sa.Connection, table: sa.Table, key: str | tuple[str, ...],
                rows: list[dict] | pd.DataFrame) -> None:
    """Update many rows by their key (a column, or several) straight through the driver (see
    :func:`bulk_insert`; on PostgreSQL one ``UPDATE … FROM`` rows copied in from
    :data:`COPY_UPDATE_ROWS` rows, else ``executemany``): dicts holding the key and the same
    columns to set, or a frame of them (a city's half a million rows: no dict per row)."""
    if not len(rows):
        return
    keys = (key,) if isinstance(key, str) else tuple(key)
    if isinstance(rows, pd.DataFrame):
        columns = [c for c in rows.columns if c not in keys]
        values = list(zip(*(rows[c].tolist() for c in [*columns, *keys]), strict=True))
        _update(conn, table, keys, columns, values)
        return
    columns = [c for c in rows[0] if c not in keys]
    pick = operator.itemgetter(*columns, *keys)
    _update(conn, table, keys, columns, list(map(pick, rows)))


def _update(conn: sa.Connection, table: sa.Table, keys: tuple[str, ...], columns: list[str],
            values: list[tuple]) -> None:
    quote = conn.dialect.identifier_preparer.quote
    if conn.dialect.name == "postgresql" and len(values) >= COPY_UPDATE_ROWS:
        _update_from_copy(conn, table, keys, columns, values)
        return
    mark = param_mark(conn)
    sql = (f"UPDATE {conn.dialect.identifier_preparer.format_table(table)} SET "
           + ", ".join(f"{quote(c)} = {mark}" for c in columns)
           + " WHERE " + " AND ".join(f"{quote(k)} = {mark}" for k in keys))
    for start in range(0, len(values), 50_000):
        conn.exec_driver_sql(sql, values[start:start + 50_000])


def _copy_rows(conn: sa.Connection, table: str, columns: list[str],
               rows: Iterable[tuple]) -> None:
    """Rows into ``table`` (its name as SQL, quoted) by PostgreSQL's ``COPY … FROM STDIN``,
    in the caller's transaction: the values are written as psycopg adapts a statement's
    parameters (its text dumpers, escaped for COPY's text format; ``None`` is NULL), in one
    stream instead of a statement per batch of rows, and the server parses them as a
    column's input, as it does a parameter's. The rows keep their order (an autoincrement key
    left out is numbered in it)."""
    quote = conn.dialect.identifier_preparer.quote
    statement = f"COPY {table} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    except conn.dialect.loaded_dbapi.Error as error:  # (as SQLAlchemy's own statements raise)
        raise sa.exc.DBAPIError.instance(statement, None, error,
                                         conn.dialect.loaded_dbapi.Error) from error
    finally:
        cursor.close()


def _update_from_copy(conn: sa.Connection, table: sa.Table, keys: tuple[str, ...],
                      columns: list[str], values: list[tuple]) -> None:
    """PostgreSQL: the new values copied into a temporary table with the target's column
    types, then one ``UPDATE … FROM`` it by the key (a city's half a million needs: one join,
    not a statement each). A key given twice is set to its last values, as one statement
    after the other would leave it."""
    quote = conn.dialect.identifier_preparer.quote
    target = conn.dialect.identifier_preparer.format_table(table)
    staged = quote(f"bulk_update_{table.name}")
    width = len(keys)
    last = {row[-width:]: row for row in values}  # (a dict keeps each key's last row)
    named = ", ".join(quote(c) for c in [*columns, *keys])
    conn.exec_driver_sql(f"CREATE TEMPORARY TABLE {staged} ON COMMIT DROP AS "
                         f"SELECT {named} FROM {target} WITH NO DATA")
    _copy_rows(conn, staged, [*columns, *keys], last.values())
    conn.exec_driver_sql(
        f"UPDATE {target} SET "
        + ", ".join(f"{quote(c)} = {staged}.{quote(c)}" for c in columns)
        + f" FROM {staged} WHERE "
        + " AND ".join(f"{target}.{quote(k)} = {staged}.{quote(k)}" for k in keys))
    conn.exec_driver_sql(f"DROP TABLE {staged}")


def fetch_rows(conn: sa.Connection, query: sa.Select) -> list[tuple]:
    """All rows of a select as plain tuples, straight from the driver's cursor (a city's
    register is millions of rows; SQLAlchemy's row objects would cost more than the read)."""
    compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    if compiled.positional:
        params = tuple(params[name] for name in compiled.positiontup or ())
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        return cursor.fetchall()
    finally:
        cursor.close()


def fetch_frame(conn: sa.Connection, query: sa.Select) -> pd.DataFrame:
    """A select as a frame, its columns named as the select names them (see fetch_rows)."""
    columns = [c.name for c in query.selected_columns]
    return pd.DataFrame.from_records(fetch_rows(conn, query), columns=columns)
