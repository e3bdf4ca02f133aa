"""Bulk inserts for the paths that carry the traffic: capture's exchanges, replay's attempts, the
diff's comparisons and differences.

On PostgreSQL through COPY, with ids taken from the table's sequence first: a multi-row INSERT of
wide rows spends most of its time building and parsing the SQL text, in Python and in the server.
Elsewhere (SQLite) bulk_create. Either way the instances end up with their primary keys, as after
bulk_create.
"""

from collections.abc import Callable

from django.db import connections, router
from django.db.models import Model


def rows_insert(model: type[Model], objects: list[Model]) -> None:
    """Insert unsaved instances of `model`; a conflict with a unique constraint fails them all."""
    if not objects:
        return
    db = connections[router.db_for_write(model)]
    if db.vendor != "postgresql":
        model.objects.bulk_create(objects, batch_size=1000)
        return
    fields = model._meta.concrete_fields
    converters = _copy_converters(fields)
    # What bulk_create does for auto_now(_add) fields, the one value a row gets on its way in.
    stamped = [
        field
        for field in fields
        if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)
    ]
    table = model._meta.db_table
    quote = db.ops.quote_name
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [table, len(objects)],
        )
        ids = sorted(pk for (pk,) in cursor.fetchall())
        columns = ", ".join(quote(field.column) for field in fields)
        types = _column_types.get((db.alias, table))
        if types is None:
            cursor.execute(f"SELECT {columns} FROM {quote(table)} LIMIT 0")  # noqa: S608
            types = _column_types[(db.alias, table)] = [column.type_code for column in cursor.description]
        with cursor.copy(f"COPY {quote(table)} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(types)
            for instance, pk in zip(objects, ids, strict=True):
                instance.pk = pk
                for field in stamped:
                    field.pre_save(instance, add=True)
                row = []
                for attname, as_is, prepare in converters:
                    value = getattr(instance, attname)
                    row.append(value if type(value) is as_is else prepare(value, db))
                copy.write_row(row)
    for instance in objects:
        instance._state.adding = False
        instance._state.db = db.alias


# The type oids of each table's columns, read once per process: built-in types' oids never change.
_column_types: dict[tuple[str, str], list[int]] = {}


# Fields whose values of the given Python type psycopg takes as they are: for those, Django's
# get_db_prep_save only hands the value back, and calling it for every field of every row costs as
# much as building the row.
COPY_AS_IS = {
    "CharField": str,
    "TextField": str,
    "BooleanField": bool,
    "FloatField": float,
    "BinaryField": bytes,
    **dict.fromkeys(
        [
            "AutoField",
            "BigAutoField",
            "IntegerField",
            "BigIntegerField",
            "SmallIntegerField",
            "PositiveIntegerField",
            "PositiveSmallIntegerField",
            "PositiveBigIntegerField",
        ],
        int,
    ),
}


def _copy_converters(fields) -> list[tuple[str, type | None, Callable]]:
    converters = []
    for field in fields:
        as_is = COPY_AS_IS.get((field.target_field if field.is_relation else field).get_internal_type())
        converters.append((field.attname, as_is, field.get_db_prep_save))
    return converters
