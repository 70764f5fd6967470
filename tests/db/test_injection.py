"""Injection and secrets: user strings stay data, and passwords stay secret.

Every user-controlled string that reaches SQL is fuzzed with hypothesis:
collection and schema names, text-search config, ids, texts, metadata, filter
keys and values, query text. Builders keep one fixed shape whatever the names
(identifiers are quoted, values are parameters), and against the database
nothing changes but the intended rows: a canary table and the catalog outside
the collection stay as they were.
"""

from __future__ import annotations

import asyncio
import logging
import re
import string
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from langchain_pgvstore import (
    ConfigError,
    DatabaseUnavailableError,
    FilterError,
    PGVStore,
    QueryTimeoutError,
    SchemaError,
)
from langchain_pgvstore._sql import Frag, bm25_schema, bm25_search, ddl, dml, search
from langchain_pgvstore._sql.filters import compile_filter
from langchain_pgvstore.config import (
    REGISTRY_TABLE,
    Distance,
    HNSWIndex,
    Table,
    VectorType,
    validate_identifier,
)
from tests.fix_db import unique_name

DIM = 4
SCHEMAS = unique_name("inj")  # prefix of the schemas the fuzzed collections go in

# -- strategies ---------------------------------------------------------------------------------

PAYLOADS = [
    "'; DROP TABLE canary; --",
    '"; DROP TABLE canary; --',
    "x' OR '1'='1",
    '" OR ""="',
    "$$; DROP TABLE canary; $$",
    "$body$",
    "\\'; SELECT 1; --",
    "E'\\x27'",
    'U&"\\0041"',
    "*/ SELECT 1 /*",
    "::text",
    "{}",
    "{0}",
    "%s",
    "%(x)s",
    "%%",
    "?",
    "$1",
    ");",
    "pg_sleep(10)",
    "ünïcödé ☃ 𝔘",
    " leading and trailing ",
    "\t\n\r",
]

# any text PostgreSQL can store: no NUL, no lone surrogates
TEXT_CHARS = st.characters(codec="utf-8", exclude_characters="\x00")
text = st.one_of(st.sampled_from(PAYLOADS), st.text(TEXT_CHARS, max_size=40))


def _is_identifier(value: str) -> bool:
    try:
        validate_identifier(value, "name")
    except ConfigError:
        return False
    return value != REGISTRY_TABLE


# Identifiers without "%": psycopg reads a "%" in a quoted identifier as a
# placeholder (see test_percent_in_names_*), which has tests of its own.
IDENT_CHARS = st.characters(codec="utf-8", exclude_characters="\x00%")
identifier = st.one_of(
    st.sampled_from([p for p in PAYLOADS if "%" not in p and p.strip()]),
    st.text(IDENT_CHARS, min_size=1, max_size=24),
).filter(_is_identifier)
any_identifier = st.one_of(
    identifier,
    st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=15),
).filter(_is_identifier)


def _table(names: tuple[str, str]) -> Table | None:
    try:
        return Table(*names)
    except ConfigError:
        return None


# (schema, collection) pairs the store accepts: valid identifiers that are not a
# system schema, the registry or a name of the store's own objects (those are
# refused before any SQL is built: tests/unit/test_config.py::test_bad_identifiers)
tables = st.tuples(any_identifier, any_identifier).map(_table).filter(lambda t: t is not None)
# a metadata key usable as a one-segment filter key
field = text.filter(lambda k: k and "." not in k and not k.startswith("$") and k != "fixed")
scalar = st.one_of(
    text,
    st.integers(-(10**12), 10**12),
    # jsonb keeps a number's decimal digits, not its Python type: 1e16 is written as
    # "1e+16" and read back as the int 10000000000000000 (see docs/reliability.md)
    st.floats(min_value=-1e15, max_value=1e15, allow_nan=False),
    st.booleans(),
)

# -- builders keep one shape, whatever the names --------------------------------------------------


_QUOTED = re.compile(r'"((?:[^"]|"")*)"')
_STRING = re.compile(r"'((?:[^']|'')*)'")
_E_STRING = re.compile(r"E'((?:[^'\\]|''|\\\\)*)'")


def unquote(rendered: str) -> list[str]:
    """Parse `"a"."b"` as PostgreSQL's lexer would: the names it denotes."""
    names = [m.group(1).replace('""', '"') for m in _QUOTED.finditer(rendered)]
    assert '"' + '"."'.join(n.replace('"', '""') for n in names) + '"' == rendered, rendered
    return names


def unliteral(rendered: str) -> str:
    """Parse a rendered string literal; it must be one whole literal, nothing after it."""
    text = rendered.strip()
    if m := _E_STRING.fullmatch(text):
        return re.sub(r"''|\\\\", lambda x: x.group(0)[0], m.group(1))
    m = _STRING.fullmatch(text)
    assert m, f"not one string literal: {rendered!r}"
    return m.group(1).replace("''", "'")


def shape(frag: sql.Composable, table: Table) -> list[str]:
    """The statement's structure: identifiers and literals replaced by what they denote,
    the names made from the user's ones replaced by the reference table's."""
    out: list[str] = []
    for part in frag if isinstance(frag, sql.Composed) else [frag]:
        if isinstance(part, sql.Composed):
            out += shape(part, table)
        elif isinstance(part, sql.Identifier):
            out.append(_reference(unquote(part.as_string(None)), table))
        elif isinstance(part, sql.Literal):
            rendered = part.as_string(None)
            if re.fullmatch(r" ?-?\d+", rendered):
                out.append("<number>")  # dimensions, index options, lock keys
            else:
                # a string literal may hold SQL itself (a function body): its quoted
                # identifiers are checked like the statement's own
                body = _QUALIFIED.sub(
                    lambda m: _reference(unquote(m.group(0)), table), unliteral(rendered)
                )
                body = re.sub(r" ?-?\d{10,}", "<number>", body)  # lock keys hashed from names
                out.append(f"<literal {body!r}>")
        else:
            out.append(part.as_string(None))
    return out


_QUALIFIED = re.compile(r'"(?:[^"]|"")*"(?:\."(?:[^"]|"")*")?')


def _reference(parts: list[str], table: Table) -> str:
    """What an identifier denotes, with the user's names mapped to the reference table's.

    A qualified name is the schema and a relation or function: the collection's
    table or a name derived from it. A bare name is a column, an alias or an index.
    """
    derived = {table.index_name(kind): REFERENCE.index_name(kind) for kind in KINDS}
    if len(parts) == 2:
        schema, relation = parts
        assert schema == table.schema, parts
        if relation == table.name:
            mapped = REFERENCE.name
        else:
            assert relation in derived or relation in FIXED, parts
            mapped = derived.get(relation, relation)
        return f"<identifier {REFERENCE.schema}.{mapped}>"
    [name] = parts
    assert name in FIXED or name in derived, parts
    return f"<identifier {name if name in FIXED else derived[name]}>"


VEC = [0.5] * DIM


def _frags(value: Frag | list[Frag]) -> list[Frag]:
    return value if isinstance(value, list) else [value]


BUILDERS: dict[str, Callable[[Table], Frag | list[Frag]]] = {
    "create_table": lambda t: ddl.create_table(t, DIM, VectorType.VECTOR, "english"),
    "secondary_indexes": ddl.create_secondary_indexes,
    "hnsw_index": lambda t: ddl.create_ann_index(
        t, Distance.COSINE, VectorType.VECTOR, HNSWIndex()
    ),
    "lexical_ddl": lambda t: bm25_schema.bm25_ddl(t, "english"),
    "drop_lexical": bm25_schema.drop_bm25,
    "drop_table": ddl.drop_table,
    "registry_row": ddl.registry_row,
    "clean_gin_pending": ddl.clean_gin_pending,
    "merge_staging": dml.merge_staging,
    "count_staged_changes": dml.count_staged_changes,
    "delete_ids": lambda t: dml.delete_ids(t, ["x"]),
    "get_by_ids": lambda t: dml.get_by_ids(t, ["x"]),
    "get_where": lambda t: dml.get_where(t, compile_filter({"k": "v"}, t), 10, 5),
    "knn": lambda t: search.knn(
        t, Distance.COSINE, VectorType.VECTOR, VEC, 4, compile_filter(None, t)
    ),
    "filtered_knn": lambda t: search.filtered_knn(
        t, Distance.L2, VectorType.VECTOR, VEC, 4, compile_filter({"k": {"$gt": 1}}, t), 100
    ),
    "keyword_search": lambda t: bm25_search.keyword_search(
        t, "query", 4, Frag(sql.SQL("TRUE")), ts_config="english"
    ),
}
REFERENCE = Table("s", "n")
_PREFIX = REFERENCE.index_name("")  # "n_<hash>_": derived names are this plus a kind


def _reference_identifiers() -> set[str]:
    found: set[str] = set()

    def walk(frag: sql.Composable) -> None:
        for part in frag if isinstance(frag, sql.Composed) else [frag]:
            if isinstance(part, sql.Composed):
                walk(part)
            elif isinstance(part, sql.Identifier):
                found.update(unquote(part.as_string(None)))
            elif isinstance(part, sql.Literal) and "'" in part.as_string(None):
                found.update(m.group(1) for m in _QUOTED.finditer(unliteral(part.as_string(None))))

    for build in BUILDERS.values():
        for frag in _frags(build(REFERENCE)):
            walk(frag.sql)
    return found


_ALL = _reference_identifiers()
KINDS = sorted(n[len(_PREFIX) :] for n in _ALL if n.startswith(_PREFIX))
# identifiers the builders use that are not derived from the user's names
FIXED = _ALL - {REFERENCE.schema, REFERENCE.name} - {REFERENCE.index_name(k) for k in KINDS}


@settings(max_examples=150, deadline=None)
@given(table=tables)
@example(table=Table("public", 'x"; DROP TABLE canary; --'))
@example(table=Table('"', "'"))
@example(table=Table("$$", "a'b\\c$body$"))
def test_builders_keep_their_shape_and_quote_every_name(table: Table) -> None:
    """For any valid names: every statement has the shape it has for the reference
    names, once each identifier (also those inside a function body's string literal)
    is parsed back and mapped to its reference; the parameters are the same values."""
    for builder_name, build in BUILDERS.items():
        got, ref = _frags(build(table)), _frags(build(REFERENCE))
        assert len(got) == len(ref)
        for frag, reference in zip(got, ref, strict=True):
            assert shape(frag.sql, table) == shape(reference.sql, REFERENCE), builder_name
            assert len(frag.params) == len(reference.params), builder_name


def test_shape_check_notices_a_name_spliced_as_text() -> None:
    """The check above is not vacuous: text spliced in as SQL changes the shape."""
    table = Table("public", "x; DROP TABLE canary")
    spliced = sql.SQL("DROP TABLE " + table.name)  # what the builders must never do
    assert shape(spliced, table) != shape(sql.SQL("DROP TABLE " + REFERENCE.name), REFERENCE)
    assert KINDS and "hnsw" in KINDS and "bm25" in KINDS


@settings(max_examples=150, deadline=None)
@given(table=tables)
def test_percent_in_names_never_becomes_a_placeholder(table: Table) -> None:
    """psycopg reads every "%" of a statement that has parameters as a placeholder,
    including one inside a quoted identifier. A statement with parameters must
    therefore contain no "%" but its own `%s` placeholders (names with "%" are refused:
    tests/unit/test_config.py::test_bad_identifiers)."""
    for builder_name, build in BUILDERS.items():
        for frag in _frags(build(table)):
            if frag.params:
                rendered = frag.as_string()
                assert rendered.count("%") == rendered.count("%s") == len(frag.params), (
                    builder_name,
                    rendered,
                )


_OPERATORS: list[Callable[[Any], Any]] = [
    lambda v: v,
    lambda v: {"$eq": v},
    lambda v: {"$ne": v},
    lambda v: {"$in": [v, v]},
    lambda v: {"$nin": [v]},
    lambda v: {"$contains": v},
]
_ORDERED: list[Callable[[Any], Any]] = [
    lambda v: {"$gt": v},
    lambda v: {"$lte": v},
    lambda v: {"$between": [v, v]},
]


def _reference_value(value: Any) -> Any:
    return {str: "v", int: 1, float: 1.5, bool: True}[type(value)]


@settings(max_examples=200, deadline=None)
@given(key=field, value=scalar, like=text)
def test_filter_text_never_depends_on_keys_or_values(key: str, value: Any, like: str) -> None:
    """A filter's SQL text depends on its shape only: keys and values are all parameters."""
    table = Table("public", "docs")
    ref_value = _reference_value(value)
    cases = [(op(value), op(ref_value)) for op in _OPERATORS]
    cases += [(op(value), op(ref_value)) for op in _ORDERED]
    like_pattern = like.rstrip("\\") or "x"
    cases += [({"$like": like_pattern}, {"$like": "p"}), ({"$exists": True}, {"$exists": True})]
    for got, ref in cases:
        frag = compile_filter({key: got}, table)
        reference = compile_filter({"k": ref}, table)
        assert frag.as_string() == reference.as_string()
        assert len(frag.params) == len(reference.params)


# -- against the database ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def canary(dsn: str) -> Iterator[Callable[[], list[Any]]]:
    """A canary table and a snapshot of it and of every relation outside the fuzzed schemas."""
    name = unique_name("canary")
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(sql.SQL("CREATE TABLE {} (v text)").format(sql.Identifier(name)))
        c.execute(sql.SQL("INSERT INTO {} VALUES ('alive')").format(sql.Identifier(name)))
    conn = psycopg.connect(dsn, autocommit=True)

    def snapshot() -> list[Any]:
        return [
            conn.execute(sql.SQL("SELECT v FROM {}").format(sql.Identifier(name))).fetchall(),
            conn.execute(
                "SELECT n.nspname, c.relname, c.relkind FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE c.relpersistence = 'p' AND n.nspname <> 'pg_toast'"
                " AND n.nspname NOT LIKE %s ORDER BY 1, 2",
                (SCHEMAS.replace("_", "\\_") + "\\_%",),
            ).fetchall(),
            conn.execute("SELECT proname FROM pg_proc ORDER BY 1").fetchall(),
            conn.execute("SELECT rolname FROM pg_roles ORDER BY 1").fetchall(),
        ]

    yield snapshot
    conn.close()
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def fuzz_store(make_module_store) -> PGVStore:
    store = make_module_store(DIM, collection=unique_name("values"))
    store.add_texts(["a resident document"], [{"fixed": 0}], ids=["resident"])
    return store


@settings(max_examples=100, deadline=None)
@given(doc_id=text.filter(bool), content=text, key=field, value=scalar, query=text)
@example(
    doc_id="'); DELETE FROM x; --",
    content="$$ DROP TABLE canary $$",
    key="k'); DROP TABLE canary; --",
    value='"; DROP TABLE canary; --',
    query="' OR 1=1 --",
)
def test_values_stay_data(fuzz_store, canary, doc_id, content, key, value, query) -> None:
    """Ids, texts, metadata, filter keys and values and query texts round-trip
    exactly and change nothing but the collection's own rows."""
    before = canary()
    metadata = {key: value, "fixed": 1}
    assert fuzz_store.add_texts([content], [metadata], ids=[doc_id]) == [doc_id]
    [doc] = fuzz_store.get_by_ids([doc_id])
    assert (doc.id, doc.page_content, doc.metadata) == (doc_id, content, metadata)
    assert [d.id for d in fuzz_store.similarity_search(query, k=3, filter={key: value})] == [doc_id]
    hits = fuzz_store.similarity_search(query, k=3, filter={key: {"$in": [value]}, "fixed": 1})
    assert [d.id for d in hits] == [doc_id]
    if isinstance(value, str):
        assert [d.id for d in fuzz_store.get(filter={key: {"$like": "%"}})] == [doc_id]
    fuzz_store.keyword_search(query, k=3)
    fuzz_store.keyword_search(content, k=3, filter={key: value})
    assert fuzz_store.delete([doc_id]) is True
    assert fuzz_store.get_by_ids([doc_id, "resident"])[0].id == "resident"
    assert canary() == before


def _relations(dsn: str, schema: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as c:
        rows = c.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relpersistence = 'p' ORDER BY 1",
            (schema,),
        ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture(scope="module")
def fuzzed_schemas(dsn: str) -> Iterator[list[str]]:
    """Schemas the tests made, dropped (with everything in them) at the end."""
    created: list[str] = []
    yield created
    with psycopg.connect(dsn, autocommit=True) as c:
        for schema in created:
            assert schema.startswith(SCHEMAS + "_"), schema
            c.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@settings(max_examples=30, deadline=None)
@given(
    name=identifier.filter(lambda n: not n.startswith("pg_") and _table(("public", n))),
    index=st.integers(0, 10**6),
)
@example(name='x"; DROP TABLE canary; --', index=0)
@example(name="a'b\\c $$ ;", index=1)
def test_any_collection_name_is_one_table(dsn, canary, fuzzed_schemas, name, index) -> None:
    """A collection of any valid name, in a schema of a fuzzed name, is exactly one
    table there: searches find its rows, and dropping it leaves the schema as before."""
    schema = f"{SCHEMAS}_{index}"  # fuzzed names in a throwaway schema per example
    if index % 2:
        schema += name[:8]
    fuzzed_schemas.append(schema)
    before = canary()
    with PGVStore(
        DeterministicFakeEmbedding(size=DIM), connection=dsn, schema=schema, collection=name
    ) as store:
        store.add_texts(["hello world", "other text"], [{"n": 1}, {"n": 2}], ids=["a", "b"])
        relations = _relations(dsn, schema)
        assert name in relations
        assert [d.id for d in store.similarity_search("hello", k=2, filter={"n": 1})] == ["a"]
        assert [d.id for d in store.keyword_search("hello", k=2)] == ["a"]
        assert [d.id for d in store.get_by_ids(["b", "a"])] == ["b", "a"]
        store.delete(["a"])
        assert [d.id for d in store.get()] == ["b"]
        store.delete_collection()
    assert _relations(dsn, schema) == [REGISTRY_TABLE, f"{REGISTRY_TABLE}_pkey"]
    assert canary() == before


@pytest.mark.parametrize("schema", ["public", SCHEMAS + "_pct"])
def test_percent_in_names_keeps_collections_apart(dsn, canary, schema) -> None:
    """Collections "p%b" and "p%%b" cannot be confused: "%" is refused in names.

    psycopg turns "%%" into "%" in a statement with parameters, including inside
    a quoted identifier, so a store of "p%%b" would read from and delete in the
    table of "p%b". The store refuses both names before anything runs.
    """
    before = canary()
    for name in ("p%b", "p%%b"):
        with pytest.raises(ConfigError, match="collection must not contain '%'"):
            PGVStore(
                DeterministicFakeEmbedding(size=DIM), connection=dsn, schema=schema, collection=name
            )
    assert canary() == before  # public, and everything outside the fuzzed schemas
    assert _relations(dsn, SCHEMAS + "_pct") == []  # no schema was made for them


@settings(max_examples=25, deadline=None)
@given(config=st.one_of(text, st.sampled_from(["english", "simple", "german"])))
def test_text_search_config_is_checked_not_spliced(dsn, canary, config) -> None:
    """Any text-search config name is either a known configuration or refused before
    any DDL runs; the name never reaches SQL as text."""
    before = canary()
    try:
        store = PGVStore(
            DeterministicFakeEmbedding(size=DIM),
            connection=dsn,
            collection=unique_name("ts"),
            text_search_config=config,
        )
    except ConfigError as e:
        assert "text_search_config" in str(e)  # not an identifier: refused at once
    else:
        with store:
            try:
                store.add_texts(["some words"], ids=["a"])
            except ConfigError as e:
                assert "unknown text search configuration" in str(e)
            else:
                assert config in {"english", "simple", "german"}
                assert [d.id for d in store.keyword_search("words", k=1)] == ["a"]
                store.delete_collection()
    assert canary() == before


# -- secrets ------------------------------------------------------------------------------------------

SECRET = "S3cr3t-pw-" + uuid.uuid4().hex[:12]


def _with_password(dsn: str, password: str = SECRET) -> str:
    return make_conninfo(**{**conninfo_to_dict(dsn), "password": password})


def _texts_of(value: object) -> list[str]:
    return [str(value), repr(value)]


@pytest.fixture
def debug_logs(caplog) -> Any:
    for name in ("", "langchain_pgvstore", "psycopg", "psycopg.pool"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _assert_no_secret(caplog, *objects: object, secret: str = SECRET) -> None:
    for obj in objects:
        for shown in _texts_of(obj):
            assert secret not in shown, shown
    assert caplog.records, "nothing was logged: the check below would be empty"
    for record in caplog.records:
        assert secret not in record.getMessage(), record.getMessage()
        assert secret not in str(record.args)
        if record.exc_info:
            assert secret not in logging.Formatter().formatException(record.exc_info)


async def test_password_never_shown_by_a_working_store(
    make_store, dsn, collection_name, debug_logs
) -> None:
    """A DSN with a password (the test server trusts its socket, so it connects) through
    every kind of call, a statement timeout, a schema error and a filter error: the
    password is in no message, log record, str() or repr()."""
    secret_dsn = _with_password(dsn)
    errors: list[BaseException] = []
    store = make_store(DIM, connection=secret_dsn)
    locker = psycopg.connect(dsn, connect_timeout=5)
    try:
        store.add_texts(["alpha", "beta"], [{"n": 1}, {"n": 2}], ids=["a", "b"])
        await store.aadd_texts(["gamma"], ids=["c"])
        store.similarity_search("alpha", k=2, filter={"n": 1})
        await store.amax_marginal_relevance_search("alpha", k=2)
        store.keyword_search("beta", k=1)
        await store.aget_by_ids(["a"])
        store.delete(["b"])
        with pytest.raises(FilterError) as info:
            store.similarity_search("x", filter={"n": {"$bad": 1}})
        errors.append(info.value)
        locker.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
                sql.Identifier(collection_name)
            )
        )
        with pytest.raises(QueryTimeoutError) as info:
            await store.asimilarity_search("x", statement_timeout=0.2)
        errors.append(info.value)
        locker.rollback()
        other = make_store(DIM + 1, connection=secret_dsn)
        with pytest.raises(SchemaError) as info:
            other.add_texts(["x"])
        errors.append(info.value)
        pools = [store._connector.sync_pool(), await store._connector.async_pool()]
        _assert_no_secret(
            debug_logs,
            store,
            other,
            store._connector,
            store.as_retriever(),
            *pools,
            *errors,
            *(e.__cause__ for e in errors),
        )
    finally:
        locker.close()


async def test_password_never_shown_when_the_server_is_unreachable(make_store, debug_logs):
    """Sync and async at once (each waits out the connect timeout): the error names
    host and port, never the password; neither do the pool's log records."""
    dsn = f"postgresql://alice:{SECRET}@127.0.0.1:1/db"
    store = make_store(DIM, connection=dsn, pool_timeout=1)
    results = await asyncio.wait_for(
        asyncio.gather(
            asyncio.to_thread(store.similarity_search, "x"),
            store.asimilarity_search("x"),
            return_exceptions=True,
        ),
        60,
    )
    await store.aclose()
    assert len(results) == 2
    for error in results:
        assert isinstance(error, DatabaseUnavailableError), error
        assert "host=127.0.0.1 port=1" in str(error)
    _assert_no_secret(debug_logs, store, *results, *(e.__cause__ for e in results))


MALFORMED = [
    "postgresql://alice:{pw}@[::1/db",
    "postgresql://alice:{pw}@[/db",
    "postgresql://alice:{pw}@h:5432/db?bogus=1",
    "postgresql://alice:{pw}@h/db?sslmode=",
    "postgresql://alice:{pw}@/db?host=%zz",
    "postgresql://alice:{pw}@h:5432/db?options=%",
    "host=h password={pw} port=",
    "host=h password={pw} 'unterminated",
    "host=h password='{pw}",
    "password={pw} bogus",
    "postgresql://alice:{pw}@h@h2/db",
    "postgres+psycopg://alice:{pw}@[::1/db",
]


@settings(max_examples=150, deadline=None)
@given(
    template=st.sampled_from(MALFORMED),
    # the marker keeps a drawn password from being a word the message has anyway ("langch")
    password=st.text(st.sampled_from(string.ascii_letters + string.digits), min_size=3).map(
        lambda drawn: "Zq9" + drawn
    ),
    junk=st.text(st.sampled_from("[]@:/?=&%'\" \\"), max_size=4),
)
@example(template=MALFORMED[0], password="hunter2secret", junk="")
def test_password_never_shown_for_a_malformed_dsn(template, password, junk) -> None:
    """A DSN that cannot be parsed is refused with ConfigError at once; the message
    and the description never contain the password."""
    dsn = template.format(pw=password) + junk
    try:
        store = PGVStore(DeterministicFakeEmbedding(size=DIM), connection=dsn)
    except ConfigError as e:
        assert password not in str(e), str(e)
        assert password not in repr(e)
        return
    try:
        for shown in _texts_of(store) + _texts_of(store._connector):
            assert password not in shown
    finally:
        store.close()
