"""Xero's `where` filter: a small expression language over an element's fields.

Supported: `Field=="v"`, `Field!="v"`, `<`, `<=`, `>`, `>=` against strings, numbers, true/false, null,
`DateTime(2026,10,01)` and `Guid("…")`; `Field.Contains("v")`, `.StartsWith(…)`, `.EndsWith(…)`;
`AND`/`&&`, `OR`/`||`, `NOT`/`!`, parentheses; dotted fields (`Contact.Name`). Strings compare
case-insensitively, as Xero does. `required_values` tells what an index lookup may narrow to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable

Getter = Callable[[str], Any]  # field path -> value (None when absent)


class WhereError(ValueError):
    pass


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<op>==|!=|<=|>=|<|>|&&|\|\||!|\(|\)|,|\.)
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if not match or match.end() == position:
            raise WhereError(f"cannot read the where clause at: {text[position:position + 20]!r}")
        position = match.end()
        kind = match.lastgroup
        value = match.group(kind)
        if kind == "string":
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        tokens.append((kind, value))
    return tokens


@dataclass
class _Comparison:
    field: str
    op: str
    value: Any

    def fields(self) -> set[str]:
        return {self.field}

    def __call__(self, get: Getter) -> bool:
        return _compare(get(self.field), self.op, self.value)


@dataclass
class _Bool:
    op: str  # and, or, not
    parts: list[Any]

    def fields(self) -> set[str]:
        return set().union(*(part.fields() for part in self.parts))

    def __call__(self, get: Getter) -> bool:
        if self.op == "and":
            return all(part(get) for part in self.parts)
        if self.op == "or":
            return any(part(get) for part in self.parts)
        return not self.parts[0](get)


def _normalise(value: Any) -> Any:
    if isinstance(value, str):
        return value.casefold()
    if isinstance(value, datetime):
        return value.date() if value.time() == datetime.min.time() else value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return Decimal(str(value))
    return value


def _compare(actual: Any, op: str, expected: Any) -> bool:
    if op in ("contains", "startswith", "endswith"):
        if not isinstance(actual, str):
            return False
        text, part = actual.casefold(), str(expected).casefold()
        return {"contains": part in text, "startswith": text.startswith(part), "endswith": text.endswith(part)}[op]
    if isinstance(expected, date) and isinstance(actual, str):
        try:
            actual = date.fromisoformat(actual[:10])
        except ValueError:
            return False
    left, right = _normalise(actual), _normalise(expected)
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if left is None or right is None:
        return False
    try:
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[op]
    except TypeError:
        return False


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]):
        self.tokens = tokens
        self.position = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> tuple[str, Any]:
        token = self.peek()
        if token is None:
            raise WhereError("the where clause ends too early")
        self.position += 1
        return token

    def expect(self, value: str) -> None:
        kind, found = self.take()
        if found != value:
            raise WhereError(f"expected {value!r} in the where clause, found {found!r}")

    def is_word(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token[0] in ("word", "op") and str(token[1]).upper() in words

    def expression(self) -> Any:
        parts = [self.conjunction()]
        while self.is_word("OR", "||"):
            self.take()
            parts.append(self.conjunction())
        return parts[0] if len(parts) == 1 else _Bool("or", parts)

    def conjunction(self) -> Any:
        parts = [self.factor()]
        while self.is_word("AND", "&&"):
            self.take()
            parts.append(self.factor())
        return parts[0] if len(parts) == 1 else _Bool("and", parts)

    def factor(self) -> Any:
        if self.is_word("NOT", "!"):
            self.take()
            return _Bool("not", [self.factor()])
        if self.peek() == ("op", "("):
            self.take()
            inner = self.expression()
            self.expect(")")
            return inner
        return self.comparison()

    def comparison(self) -> Any:
        kind, word = self.take()
        if kind != "word":
            raise WhereError(f"expected a field name in the where clause, found {word!r}")
        path = [word]
        while self.peek() == ("op", "."):
            self.take()
            kind, word = self.take()
            if kind != "word":
                raise WhereError("expected a field name after '.'")
            if word.lower() in ("contains", "startswith", "endswith") and self.peek() == ("op", "("):
                self.take()
                value = self.literal()
                self.expect(")")
                return _Comparison(".".join(path), word.lower(), value)
            path.append(word)
        kind, op = self.take()
        if op not in ("==", "!=", "<", "<=", ">", ">="):
            raise WhereError(f"expected a comparison after {'.'.join(path)}, found {op!r}")
        return _Comparison(".".join(path), op, self.literal())

    def literal(self) -> Any:
        kind, value = self.take()
        if kind == "string":
            return value
        if kind == "number":
            return Decimal(value)
        if kind == "word":
            lowered = value.lower()
            if lowered in ("true", "false"):
                return lowered == "true"
            if lowered == "null":
                return None
            if lowered == "datetime":
                self.expect("(")
                numbers = [int(self.take()[1])]
                while self.peek() == ("op", ","):
                    self.take()
                    numbers.append(int(self.take()[1]))
                self.expect(")")
                try:
                    moment = datetime(*numbers)
                except (TypeError, ValueError) as error:
                    raise WhereError(f"invalid DateTime in the where clause: {error}") from None
                return moment.date() if len(numbers) <= 3 else moment
            if lowered == "guid":
                self.expect("(")
                _, text = self.take()
                self.expect(")")
                return str(text)
        raise WhereError(f"expected a value in the where clause, found {value!r}")


@dataclass
class Where:
    predicate: Any
    text: str

    def fields(self) -> set[str]:
        return self.predicate.fields()

    def __call__(self, get: Getter) -> bool:
        return bool(self.predicate(get))

    def equality_values(self, field: str) -> set[str] | None:
        """When the clause is just `field=="a" OR field=="b" …`, the values (for an index lookup)."""
        parts = self.predicate.parts if isinstance(self.predicate, _Bool) and self.predicate.op == "or" else [self.predicate]
        values = set()
        for part in parts:
            if not (isinstance(part, _Comparison) and part.field == field and part.op == "==" and isinstance(part.value, str)):
                return None
            values.add(part.value)
        return values


def _required(node: Any, field: str) -> set[str] | None:
    if isinstance(node, _Comparison):
        return {node.value} if node.field == field and node.op == "==" and isinstance(node.value, str) else None
    if isinstance(node, _Bool) and node.op == "and":
        known = [values for values in (_required(part, field) for part in node.parts) if values is not None]
        return min(known, key=len) if known else None  # any one conjunct bounds the whole
    if isinstance(node, _Bool) and node.op == "or":
        found = [_required(part, field) for part in node.parts]
        return set().union(*found) if all(values is not None for values in found) else None
    return None  # NOT, or a clause that says nothing of the field


def required_values(where: "Where", field: str) -> set[str] | None:
    """The values `field` must equal (case-insensitively) for an element to match, when the clause says:
    `field=="a"`, ANDed with anything, or OR-groups each of which says it, e.g.
    `(Type=="ACCPAY" AND InvoiceNumber=="9") OR (Type=="ACCPAY" AND InvoiceNumber=="10")` → {"9", "10"}.
    None when it does not (an index lookup cannot be used, every element must be read)."""
    return _required(where.predicate, field)


def parse_where(text: str) -> Where:
    parser = _Parser(_tokens(text))
    predicate = parser.expression()
    if parser.peek() is not None:
        raise WhereError(f"unexpected {parser.peek()[1]!r} in the where clause")
    return Where(predicate, text)

