"""The book's fast constructors of its frozen dataclasses build the same objects as the dataclasses do."""

from __future__ import annotations

import dataclasses
import pickle
import uuid
from decimal import Decimal as D

import pytest

from aegis.virtual_account import book


def _values(cls: type) -> list[object]:
    """One distinct value per field (types do not matter to the constructors)."""
    return [f"{f.name}-{i}" if i % 3 else D(i) / 7 for i, f in enumerate(dataclasses.fields(cls))]


@pytest.mark.parametrize(
    ("cls", "build"),
    [
        (book.Position, book._make_position),
        (book.Trade, book._make_trade),
        (book.LedgerEntry, book._make_ledger_entry),
        (book.OpenOutcome, book._make_open_outcome),
        (book.CloseOutcome, book._make_close_outcome),
    ],
)
def test_builder_builds_what_the_dataclass_builds(cls: type, build: object) -> None:
    values = _values(cls)
    expected = cls(*values)
    built = build(*values)  # type: ignore[operator]
    assert type(built) is cls
    assert built == expected
    assert hash(built) == hash(expected)
    assert repr(built) == repr(expected)
    assert dataclasses.astuple(built) == tuple(values)
    assert pickle.loads(pickle.dumps(built)) == expected
    # by name too, and still frozen
    names = [f.name for f in dataclasses.fields(cls)]
    assert build(**dict(zip(names, values, strict=True))) == expected  # type: ignore[operator]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(built, names[0], "other")
    # a different value in any one field makes a different object
    for i in range(len(values)):
        changed = list(values)
        changed[i] = uuid.uuid4()
        assert build(*changed) != expected  # type: ignore[operator]


def test_builder_keeps_the_defaults() -> None:
    short = _values(book.Position)[:-1]  # mark_price defaults to None
    assert book._make_position(*short) == book.Position(*short)
    assert book._make_position(*short).mark_price is None
    entry = _values(book.LedgerEntry)[:-1]  # fee defaults to 0
    assert book._make_ledger_entry(*entry).fee == D(0) == book.LedgerEntry(*entry).fee
    with pytest.raises(TypeError):
        book._make_position(*short[:-1])  # a required field missing, as with the dataclass


def test_builder_refuses_what_it_cannot_build() -> None:
    @dataclasses.dataclass(frozen=True)
    class NoSlots:
        a: int

    @dataclasses.dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="not a slotted dataclass"):
        book._builder(NoSlots)
    with pytest.raises(TypeError, match="default factories"):
        book._builder(Factory)


def test_uuid_array_spells_each_uuid_as_its_hex_digits() -> None:
    ids = [uuid.uuid4(), None, uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
    text = book._uuid_array(ids)
    assert text == "{" + ",".join("NULL" if u is None else u.hex for u in ids) + "}"
    assert [None if t == "NULL" else uuid.UUID(t) for t in text[1:-1].split(",")] == ids
    assert book._uuid_array([]) == "{}"
