"""Database expressions over the JSON columns of training jobs, for filtering and sorting runs in SQL.

Runs are filtered and sorted by values inside ``final_metrics``, ``hyperparameters`` and ``tags`` (JSON),
thousands at a time, so the work happens in the database, never by loading rows. Django's key transforms
compare JSON values with JSON semantics that differ between SQLite and PostgreSQL (a string against a
number, booleans); these expressions give one meaning on both:

* :class:`JSONNumber` is the number under a top-level key, NULL when the key is absent or holds anything
  but a number. A plain ``CAST`` of a text value would be 0.0 on SQLite and an error (a 500) on PostgreSQL.
* :class:`JSONArrayHasText` is true when a JSON array holds a string: ``@>`` on PostgreSQL (its GIN-able
  containment), ``json_each`` on SQLite, where Django's ``contains`` lookup is not supported.
"""

from __future__ import annotations

import json

from django.db.models import BooleanField, F, FloatField, Func


def _sqlite_path(key: str) -> str:
    # A quoted member name: keys such as "validation:accuracy" or "a.b" are one key, never a path.
    return "$." + json.dumps(key)


class JSONNumber(Func):
    """The number stored under ``key`` in the JSON object column ``field``, else NULL."""

    output_field = FloatField()

    def __init__(self, field: str, key: str) -> None:
        super().__init__(F(field))
        self.key = key

    def _lhs(self, compiler, connection):
        return compiler.compile(self.source_expressions[0])

    def as_sqlite(self, compiler, connection, **extra):
        lhs, params = self._lhs(compiler, connection)
        path = _sqlite_path(self.key)
        sql = f"(CASE WHEN json_type({lhs}, %s) IN ('integer', 'real') THEN json_extract({lhs}, %s) END)"
        return sql, (*params, path, *params, path)

    def as_postgresql(self, compiler, connection, **extra):
        lhs, params = self._lhs(compiler, connection)
        sql = f"(CASE WHEN jsonb_typeof({lhs} -> %s) = 'number' THEN ({lhs} ->> %s)::double precision END)"
        return sql, (*params, self.key, *params, self.key)

    def as_sql(self, compiler, connection, **extra):  # pragma: no cover - Studio runs on SQLite or PostgreSQL
        raise NotImplementedError(f"JSONNumber supports SQLite and PostgreSQL, not {connection.vendor}")


class JSONArrayHasText(Func):
    """True when the JSON array column ``field`` holds the string ``value``."""

    output_field = BooleanField()

    def __init__(self, field: str, value: str) -> None:
        super().__init__(F(field))
        self.value = value

    def as_sqlite(self, compiler, connection, **extra):
        lhs, params = compiler.compile(self.source_expressions[0])
        # lhs is the compiled column; the tag travels as a parameter.
        sql = f"EXISTS (SELECT 1 FROM json_each({lhs}) AS item WHERE item.type = 'text' AND item.value = %s)"  # noqa: S608  # nosec B608
        return sql, (*params, self.value)

    def as_postgresql(self, compiler, connection, **extra):
        lhs, params = compiler.compile(self.source_expressions[0])
        return f"({lhs} @> %s::jsonb)", (*params, json.dumps([self.value]))

    def as_sql(self, compiler, connection, **extra):  # pragma: no cover - Studio runs on SQLite or PostgreSQL
        raise NotImplementedError(f"JSONArrayHasText supports SQLite and PostgreSQL, not {connection.vendor}")
