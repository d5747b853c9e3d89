"""The DDL shapes the migrations repeat, each written out with its exact types and names.

Frozen in time: a migration must build the same schema whenever it runs, so nothing here reads
``b24app.storage.models`` (the models move on, the migrations already run do not), and what a
builder emits may never change once a migration uses it: a new shape is a new builder.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

# A foreign key: its column, the table whose ``id`` it holds, what ON DELETE does.
Ref = tuple[str, str, str]
PORTAL: Ref = ("portal_id", "portals", "CASCADE")


def _columns(
    make_type: Callable[[], Any], names: Sequence[str], null: bool, default: str | None
) -> list[sa.Column[Any]]:
    return [sa.Column(n, make_type(), nullable=null, server_default=default) for n in names]


def integer(*names: str, null: bool = False, default: str | None = None) -> list[sa.Column[Any]]:
    return _columns(sa.Integer, names, null, default)


def string(
    length: int, *names: str, null: bool = False, default: str | None = None
) -> list[sa.Column[Any]]:
    return _columns(lambda: sa.String(length=length), names, null, default)


def timestamp(*names: str, null: bool = False) -> list[sa.Column[Any]]:
    """``sa.DateTime()``: naive UTC (b24app/storage/models.py utc_now)."""
    return _columns(sa.DateTime, names, null, None)


def json(*names: str, null: bool = False) -> list[sa.Column[Any]]:
    return _columns(sa.JSON, names, null, None)


def boolean(*names: str) -> list[sa.Column[Any]]:
    return _columns(sa.Boolean, names, False, None)


def text(*names: str) -> list[sa.Column[Any]]:
    return _columns(sa.Text, names, False, None)


def numeric(precision: int, scale: int, *names: str, null: bool = False) -> list[sa.Column[Any]]:
    return _columns(lambda: sa.Numeric(precision=precision, scale=scale), names, null, None)


def create_table(
    name: str,
    *columns: sa.Column[Any],
    key: str = "id",
    refs: Sequence[Ref] = (),
    unique: tuple[str, Sequence[str]] | None = None,
    indexes: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """CREATE TABLE ``name``: the columns, a foreign key ``fk_<name>_<column>_<table>`` for
    each of ``refs`` (in their order), the primary key ``pk_<name>`` on ``key``, the unique
    constraint ``unique`` (name, columns); then the ``indexes`` (name: columns)."""
    fks = [
        sa.ForeignKeyConstraint(
            [column], [f"{table}.id"], name=op.f(f"fk_{name}_{column}_{table}"), ondelete=on_delete
        )
        for column, table, on_delete in refs
    ]
    pk = sa.PrimaryKeyConstraint(key, name=op.f(f"pk_{name}"))
    uq = [sa.UniqueConstraint(*unique[1], name=unique[0])] if unique else []
    op.create_table(name, *columns, *fks, pk, *uq)
    for index, index_columns in (indexes or {}).items():
        op.create_index(index, name, list(index_columns))


def portal_table(
    name: str,
    *columns: sa.Column[Any],
    key: str = "id",
    refs: Sequence[Ref] = (PORTAL,),
    unique: tuple[str, Sequence[str]] | None = None,
    indexes: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """A table of one portal's rows: an integer ``id`` (unless the portal is the ``key``) and
    ``portal_id`` first, deleted with the portal (``refs`` lists it among the others)."""
    head = integer("id") if key == "id" else []
    create_table(
        name, *head, *integer("portal_id"), *columns,
        key=key, refs=refs, unique=unique, indexes=indexes,
    )  # fmt: skip


def drop_table(name: str, *indexes: str) -> None:
    """DROP the ``indexes`` (in this order), then the table."""
    for index in indexes:
        op.drop_index(index, table_name=name)
    op.drop_table(name)


def add_columns(table: str, *columns: sa.Column[Any]) -> None:
    with op.batch_alter_table(table) as batch_op:
        for column in columns:
            batch_op.add_column(column)


def drop_columns(table: str, *names: str) -> None:
    with op.batch_alter_table(table) as batch_op:
        for name in names:
            batch_op.drop_column(name)
