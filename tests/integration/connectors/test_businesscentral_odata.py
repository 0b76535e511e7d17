"""The simulator's OData `$filter` parser: precedence, literals, functions, and clear errors on garbage."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from crossdock.connectors.sandbox.odata import (
    Call,
    Compare,
    Literal,
    Logical,
    Member,
    Not,
    ODataFilterError,
    matches,
    members,
    parse_filter,
)

ORDER = {
    "id": "5D115C9C-44E3-EA11-BB43-000D3A2FEF7A",
    "number": "S-ORD101001",
    "externalDocumentNumber": "O'Brien #1001",
    "status": "Open",
    "totalAmountExcludingTax": 1250.5,
    "fullyShipped": False,
    "shipToState": None,
    "lastModifiedDateTime": "2024-05-01T10:30:00.000Z",
    "orderDate": "2024-05-01",
}


def test_and_binds_tighter_than_or() -> None:
    tree = parse_filter("a eq 1 or b eq 2 and c eq 3")
    assert tree == Logical(
        "or",
        Compare("eq", Member("a"), Literal(Decimal(1))),
        Logical(
            "and", Compare("eq", Member("b"), Literal(Decimal(2))), Compare("eq", Member("c"), Literal(Decimal(3)))
        ),
    )


def test_not_binds_tighter_than_and_and_parentheses_override() -> None:
    assert parse_filter("not a eq 1 and b eq 2") == Logical(
        "and", Not(Compare("eq", Member("a"), Literal(Decimal(1)))), Compare("eq", Member("b"), Literal(Decimal(2)))
    )
    grouped = parse_filter("(a eq 1 or b eq 2) and c eq 3")
    assert isinstance(grouped, Logical) and grouped.op == "and"
    assert isinstance(grouped.left, Logical) and grouped.left.op == "or"


def test_precedence_changes_the_result() -> None:
    entity = {"a": 1, "b": 0, "c": 0}
    assert matches(parse_filter("a eq 1 or b eq 1 and c eq 1"), entity) is True
    assert matches(parse_filter("(a eq 1 or b eq 1) and c eq 1"), entity) is False


def test_string_with_doubled_quote() -> None:
    tree = parse_filter("externalDocumentNumber eq 'O''Brien #1001'")
    assert tree == Compare("eq", Member("externalDocumentNumber"), Literal("O'Brien #1001"))
    assert matches(tree, ORDER) is True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status eq 'Open' and totalAmountExcludingTax gt 1000.00", True),
        ("totalAmountExcludingTax le 1250.5", True),
        ("totalAmountExcludingTax lt 1250.5", False),
        ("status ne 'Open'", False),
        ("fullyShipped eq false", True),
        ("not fullyShipped", True),
        ("shipToState eq null", True),
        ("shipToState ne null", False),
        ("shipToState gt 'A'", False),
        ("id eq 5d115c9c-44e3-ea11-bb43-000d3a2fef7a", True),
        ("lastModifiedDateTime ge 2024-05-01T10:00:00Z", True),
        ("lastModifiedDateTime gt 2024-05-01T11:00:00+00:00", False),
        ("orderDate eq 2024-05-01", True),
        ("contains(externalDocumentNumber,'Brien')", True),
        ("startswith(number, 'S-ORD')", True),
        ("endswith(number,'1002')", False),
        ("tolower(status) eq 'open'", True),
        ("toupper(status) eq 'OPEN' and (number eq 'x' or number eq 'S-ORD101001')", True),
    ],
)
def test_evaluation(text: str, expected: bool) -> None:
    assert matches(parse_filter(text), ORDER) is expected


def test_literals_have_their_types() -> None:
    assert parse_filter("x eq -12.5e1") == Compare("eq", Member("x"), Literal(Decimal("-12.5e1")))
    assert parse_filter("x eq 2024-05-01T10:30:00Z") == Compare(
        "eq", Member("x"), Literal(datetime(2024, 5, 1, 10, 30, tzinfo=UTC))
    )
    assert parse_filter("contains(name,'a')") == Call("contains", (Member("name"), Literal("a")))
    assert members(parse_filter("a eq 1 and (contains(b,'x') or not c)")) == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The $filter expression is empty at position 0"),
        ("status eq", "expression expected but found 'end of expression' at position 9"),
        ("eq 1", "expression expected but found 'eq' at position 0"),
        ("status eq 'Open", "Unterminated string literal at position 10"),
        ("status == 'Open'", "unexpected character '=' at position 7"),
        ("(status eq 'Open'", "expected ')' but found 'end of expression' at position 17"),
        ("status eq 'Open')", "unexpected ')' at position 16"),
        ("status eq 'Open' 'x'", "unexpected \"'x'\" at position 17"),
        ("__import__('os')", "Unknown function '__import__' at position 0"),
        ("contains(number)", "Function 'contains' takes 2 argument(s), got 1 at position 0"),
        ("number eq 2024-13-45", "Invalid date/time literal '2024-13-45' at position 10"),
    ],
)
def test_garbage_is_rejected_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ODataFilterError) as caught:
        parse_filter(text)
    assert str(caught.value).endswith(message)


def test_incompatible_types_and_unknown_properties_fail_at_evaluation() -> None:
    with pytest.raises(ODataFilterError, match="incompatible types"):
        matches(parse_filter("status gt 5"), ORDER)
    with pytest.raises(ODataFilterError, match="Could not find a property named 'nope'"):
        matches(parse_filter("nope eq 1"), ORDER)
