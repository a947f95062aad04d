"""An evaluator for the subset of CloudWatch Logs JSON filter patterns the metric filters in stages/ use.

Syntax (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html, "Using filter
patterns to match terms in JSON log events"): the whole pattern is `{ EXPRESSION }`, where an expression is

    comparison  := SELECTOR OP VALUE | SELECTOR IS NULL | SELECTOR IS TRUE | SELECTOR IS FALSE
                 | SELECTOR NOT EXISTS
    expression  := comparison | ( expression ) | expression && expression | expression || expression

* SELECTOR is `$` followed by `.name` and `[index]` steps (`$.user.id`, `$.list[0].field`).
* VALUE is a double-quoted string, an unquoted word, a number (`75`, `-1.5`, `1e-3`) or `*`.
* Strings compare with `=`/`!=` only, case-sensitively and in full; `*` inside a string matches any run of
  characters (`"Update*"`, `123.123.*`). `$.field = *` matches any value, i.e. the field exists.
* Numbers compare with `= != < > <= >=`, and only against JSON numbers: a numeric comparison never matches a
  string such as "1500", nor a boolean.
* A comparison whose selector does not resolve never matches, whatever the operator (also `!=`).
* `IS NULL` matches a field present with the JSON value null; `NOT EXISTS` a field that is absent.
* `&&` binds tighter than `||`; parentheses group.
* An event that is not a JSON object never matches a JSON pattern.

Anything outside this subset (regex values `%...%`, space-delimited `[...]` patterns, plain terms) raises
FilterPatternError rather than being guessed at.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["FilterPatternError", "JsonFilterPattern", "matches", "parse"]

_MISSING = object()
_NUMBER_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_TOKEN_RE = re.compile(
    r"""
    \s*(?:
      (?P<op>&&|\|\||<=|>=|!=|=|<|>|\(|\))
    | (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<selector>\$(?:\.[A-Za-z0-9_\-@:]+|\[\d+\])*)
    | (?P<word>[^\s()=!<>&|"]+)
    )
    """,
    re.VERBOSE,
)


class FilterPatternError(ValueError):
    """The pattern is not valid JSON filter-pattern syntax, or uses a part this evaluator does not implement."""


@dataclass(frozen=True)
class _Token:
    kind: str  # op, string, selector, word
    text: str


@dataclass(frozen=True)
class _Comparison:
    path: tuple[str | int, ...]
    op: str
    value: Any  # str (possibly with *), float, or the WILDCARD marker
    numeric: bool


@dataclass(frozen=True)
class _Test:
    path: tuple[str | int, ...]
    test: str  # "IS NULL", "IS TRUE", "IS FALSE", "NOT EXISTS"


@dataclass(frozen=True)
class _Bool:
    op: str  # "&&" or "||"
    left: Any
    right: Any


_WILDCARD = "*"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN_RE.match(text, position)
        if not match or match.end() == position:
            raise FilterPatternError(f"unexpected text at {position}: {text[position:]!r}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append(_Token(kind, match.group(kind)))
        position = match.end()
    return tokens


def _path(selector: str) -> tuple[str | int, ...]:
    steps: list[str | int] = []
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", selector[1:]):
        steps.append(name if name else int(index))
    return tuple(steps)


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise FilterPatternError("pattern ends too early")
        self.index += 1
        return token

    def expression(self) -> Any:
        left = self.conjunction()
        while (token := self.peek()) is not None and token.text == "||":
            self.take()
            left = _Bool("||", left, self.conjunction())
        return left

    def conjunction(self) -> Any:
        left = self.primary()
        while (token := self.peek()) is not None and token.text == "&&":
            self.take()
            left = _Bool("&&", left, self.primary())
        return left

    def primary(self) -> Any:
        token = self.take()
        if token.kind == "op" and token.text == "(":
            inner = self.expression()
            closing = self.take()
            if closing.text != ")":
                raise FilterPatternError(f"expected ')', got {closing.text!r}")
            return inner
        if token.kind != "selector":
            raise FilterPatternError(f"expected a selector such as $.field, got {token.text!r}")
        path = _path(token.text)
        following = self.take()
        if following.kind == "word" and following.text in ("IS", "NOT"):
            second = self.take()
            test = f"{following.text} {second.text}"
            if test not in ("IS NULL", "IS TRUE", "IS FALSE", "NOT EXISTS"):
                raise FilterPatternError(f"unknown test {test!r}")
            return _Test(path, test)
        if following.kind != "op" or following.text not in ("=", "!=", "<", ">", "<=", ">="):
            raise FilterPatternError(f"expected a comparison operator after {token.text}, got {following.text!r}")
        return self.comparison(path, following.text, self.take())

    def comparison(self, path: tuple[str | int, ...], op: str, value: _Token) -> _Comparison:
        if value.kind == "string":
            text = json.loads(value.text)
            if op not in ("=", "!="):
                raise FilterPatternError(f"strings compare only with = and !=, not {op}")
            return _Comparison(path, op, text, numeric=False)
        if value.kind != "word":
            raise FilterPatternError(f"expected a value after {op}, got {value.text!r}")
        if _NUMBER_RE.fullmatch(value.text):
            return _Comparison(path, op, float(value.text), numeric=True)
        if value.text.startswith("%"):
            raise FilterPatternError("regular-expression values (%...%) are not implemented")
        if op not in ("=", "!="):
            raise FilterPatternError(f"{op} needs a number, got {value.text!r}")
        return _Comparison(path, op, value.text, numeric=False)


def _resolve(document: Any, path: tuple[str | int, ...]) -> Any:
    node = document
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                return _MISSING
            node = node[step]
        else:
            if not isinstance(node, dict) or step not in node:
                return _MISSING
            node = node[step]
    return node


def _string_matches(value: str, pattern: str) -> bool:
    if _WILDCARD not in pattern:
        return value == pattern
    regex = ".*".join(re.escape(part) for part in pattern.split(_WILDCARD))
    return re.fullmatch(regex, value, flags=re.DOTALL) is not None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _evaluate(node: Any, document: Any) -> bool:
    if isinstance(node, _Bool):
        if node.op == "&&":
            return _evaluate(node.left, document) and _evaluate(node.right, document)
        return _evaluate(node.left, document) or _evaluate(node.right, document)
    value = _resolve(document, node.path)
    if isinstance(node, _Test):
        if node.test == "NOT EXISTS":
            return value is _MISSING
        expected = {"IS NULL": None, "IS TRUE": True, "IS FALSE": False}[node.test]
        return value is not _MISSING and value is expected
    if value is _MISSING:
        return False
    if node.numeric:
        if not _is_number(value):
            return False
        return {
            "=": value == node.value,
            "!=": value != node.value,
            "<": value < node.value,
            ">": value > node.value,
            "<=": value <= node.value,
            ">=": value >= node.value,
        }[node.op]
    if node.value == _WILDCARD:
        return node.op == "="
    if not isinstance(value, str):
        return False
    equal = _string_matches(value, node.value)
    return equal if node.op == "=" else not equal


@dataclass(frozen=True)
class JsonFilterPattern:
    text: str
    _tree: Any

    def matches(self, event: str) -> bool:
        """Whether the log event (one line, as CloudWatch Logs receives it) matches the pattern."""
        try:
            document = json.loads(event)
        except json.JSONDecodeError:
            return False
        if not isinstance(document, dict):
            return False
        return _evaluate(self._tree, document)


def parse(pattern: str) -> JsonFilterPattern:
    text = pattern.strip()
    if not (text.startswith("{") and text.endswith("}")):
        raise FilterPatternError(f"not a JSON filter pattern (must be '{{ ... }}'): {pattern!r}")
    parser = _Parser(_tokenize(text[1:-1]))
    if not parser.tokens:
        raise FilterPatternError("empty JSON filter pattern")
    tree = parser.expression()
    if parser.peek() is not None:
        raise FilterPatternError(f"unexpected {parser.peek().text!r} after a complete expression")  # type: ignore[union-attr]
    return JsonFilterPattern(pattern, tree)


def matches(pattern: str, event: str) -> bool:
    return parse(pattern).matches(event)
