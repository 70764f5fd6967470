"""`pgvstore server ...`: the embedded server as a long-lived local database."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path
from typing import Any

import psycopg

from .._server_ctl import ServerState, client_program, server_state, start_kept, stop_server
from .._sql import ddl
from ..config import Distance, Table, VectorType
from ..server import default_data_dir
from ._exits import CLIError, Exit
from ._restore import collection_entries, parse_registry, run
from ._target import Target, add_target_options, list_collections

__all__ = ["register"]


def _data_dir(args: argparse.Namespace) -> Path:
    path: Path = args.data_dir or default_data_dir()
    return path.expanduser().resolve()


def _running(args: argparse.Namespace) -> ServerState:
    state = server_state(_data_dir(args))
    if state is None:
        raise CLIError(
            f"the embedded server in {str(_data_dir(args))!r} is not running;"
            " start it with: pgvstore server start",
            Exit.UNAVAILABLE,
        )
    return state


def _describe(state: ServerState) -> str:
    how = "until `pgvstore server stop`" if state.kept else "until its last user exits"
    users = f", {len(state.users)} other process(es) attached" if state.users else ""
    return f"running (pid {state.pid}, {how}{users})\ndata: {state.data_dir}\ndsn:  {state.dsn}"


def start(args: argparse.Namespace) -> int:
    state = start_kept(_data_dir(args))
    print(_describe(state))
    return Exit.OK


def stop(args: argparse.Namespace) -> int:
    if not stop_server(_data_dir(args)):
        print(f"not running (data: {_data_dir(args)})")
        return Exit.OK
    print("stopped")
    return Exit.OK


def status(args: argparse.Namespace) -> int:
    state = server_state(_data_dir(args))
    if state is None:
        print(f"not running\ndata: {_data_dir(args)}")
        return Exit.UNAVAILABLE
    print(_describe(state))
    return Exit.OK


def dsn(args: argparse.Namespace) -> int:
    print(_running(args).dsn)
    return Exit.OK


def _client_dsn(args: argparse.Namespace) -> str:
    """--dsn, else the running embedded server (never one that would stop with us)."""
    if args.dsn:
        return Target(args).dsn
    return _running(args).dsn


def psql(args: argparse.Namespace) -> int:
    program = client_program("psql")
    extra = [a for a in args.psql_args if a != "--"]
    argv = [str(program), f"--dbname={_client_dsn(args)}", *extra]
    os.execv(argv[0], argv)
    raise AssertionError("unreachable")


def dump(args: argparse.Namespace) -> int:
    target = _client_dsn(args)
    scope = [f"--schema={args.schema}", "--extension=vector"] if args.schema else []
    run(
        client_program("pg_dump"),
        ["--format=custom", "--no-owner", f"--file={args.file}", *scope, f"--dbname={target}"],
        what="pg_dump",
    )
    print(f"dumped {'schema ' + args.schema if args.schema else 'the database'} to {args.file}")
    return Exit.OK


def restore(args: argparse.Namespace) -> int:
    target = _client_dsn(args)
    program = client_program("pg_restore")
    if not Path(args.file).is_file():
        raise CLIError(f"no such file: {args.file}", Exit.USAGE)
    if not args.collection:
        run(program, ["--no-owner", "--exit-on-error", f"--dbname={target}", args.file],
            what="pg_restore")  # fmt: skip
        print(f"restored {args.file}")
        return Exit.OK
    listing = run(program, ["--list", args.file], what="pg_restore --list")
    restore_args = argparse.Namespace(**{**vars(args), "dsn": target})
    with Target(restore_args).connect() as conn:
        present = {c.name for c in list_collections(conn, args.restore_schema)}
        for name in args.collection:
            if name in present:
                raise CLIError(
                    f"collection {name!r} exists in schema {args.restore_schema!r};"
                    f" drop it first (pgvstore drop {name})",
                    Exit.FAILED,
                )
        for name in args.collection:
            _restore_one(program, args.file, listing, args.restore_schema, name, target, conn)
            print(f"restored collection {name!r} from {args.file}")
    return Exit.OK


def _restore_one(
    program: Path,
    file: str,
    listing: str,
    schema: str,
    name: str,
    target: str,
    conn: psycopg.Connection[Any],
) -> None:
    entries = collection_entries(listing, schema, name)
    script = run(
        program, ["--data-only", f"--schema={schema}", "--table=pgvstore_collections", "--file=-",
                  file], what="pg_restore",
    )  # fmt: skip
    row = parse_registry(script, name)
    if not entries or row is None:
        raise CLIError(f"{file} holds no collection {name!r} in schema {schema!r}", Exit.NOT_FOUND)
    table = Table(schema, name)
    with tempfile.NamedTemporaryFile("w", suffix=".list") as chosen:
        chosen.write("\n".join(entries) + "\n")
        chosen.flush()
        for frag in (ddl.create_extension(), ddl.create_schema(schema), ddl.create_registry(table)):
            conn.execute(frag.sql, frag.params or None)
        run(program, ["--no-owner", "--exit-on-error", "--single-transaction",
                      f"--use-list={chosen.name}", f"--dbname={target}", file],
            what="pg_restore")  # fmt: skip
    frag = ddl.insert_registry_row(
        table,
        int(row.get("dimensions") or 0),
        Distance.parse(row.get("distance") or ""),
        VectorType.parse(row.get("vector_type") or ""),
        row.get("text_search_config") or "english",
        row.get("embedding_model"),
        int(row.get("schema_version") or 1),
    )
    conn.execute(frag.sql, frag.params or None)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    server = commands.add_parser(
        "server",
        help="the embedded server as a long-lived local database",
        description="Run the embedded PostgreSQL server beyond one process, and use its own"
        " psql, pg_dump and pg_restore (the server's version, so no mismatch).",
    )
    actions = server.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(
        name: str, handler: object, help: str, *, client: bool = False
    ) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".")
        if client:
            add_target_options(parser, schema=False)
        else:
            parser.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                                help="data directory (default: $PGVSTORE_DATA_DIR or a per-user"
                                " folder)")  # fmt: skip
        parser.set_defaults(handler=handler)
        return parser

    action("start", start, "start the server and leave it running after this command")
    action("stop", stop, "stop the server (open sessions are ended)")
    action("status", status, "say whether the server runs, where, and its DSN (exit 4 if not)")
    action("dsn", dsn, "print the running server's DSN, for psql, pg_dump or another program")
    p = action("psql", psql, "open the bundled psql on the server (or --dsn)", client=True)
    p.add_argument("psql_args", nargs=argparse.REMAINDER, help="arguments for psql, after --")
    p = action("dump", dump, "dump the database (or one --schema) with the bundled pg_dump",
               client=True)  # fmt: skip
    p.add_argument("file", help="archive to write (pg_dump's custom format)")
    p.add_argument("--schema", default=None, help="dump only this schema and pgvector")
    p = action("restore", restore, "restore an archive of `pgvstore server dump`", client=True)
    p.add_argument("file", help="archive to read")
    p.add_argument("--collection", action="append", default=[], metavar="NAME",
                   help="restore only this collection (repeatable); it must not exist")  # fmt: skip
    p.add_argument("--schema", dest="restore_schema", default="public", metavar="SCHEMA",
                   help="schema of --collection (default: public)")  # fmt: skip
