"""A small model of CloudWatch metric math at one timestamp: the subset the alarms use, to evaluate the synthesized
expressions against datapoints instead of comparing expression strings.

Semantics from the CloudWatch User Guide, "Metric math syntax and functions": arithmetic and comparison operators
work element-wise, comparisons give 1 or 0; FILL(m, value) fills the missing values of a time series; IF(condition,
trueValue, falseValue) takes trueValue where the condition is non-zero; a datapoint missing from an operand is
missing from the result. A missing datapoint is None here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Value = float | None
TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_]*)|(>=|<=|==|!=|[-+*/(),<>\[\]]))")


class MetricMathError(ValueError):
    """An expression outside the modelled subset."""


def tokens(expression: str) -> list[str]:
    found, position = [], 0
    expression = expression.rstrip()
    while position < len(expression):
        match = TOKEN.match(expression, position)
        if not match:
            raise MetricMathError(f"cannot read {expression[position:]!r}")
        found.append(next(group for group in match.groups() if group is not None))
        position = match.end()
    return found


def _arith(op: str, left: Value, right: Value) -> Value:
    if left is None or right is None:
        return None
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if op == "/":
        return left / right if right else None
    return float({">": left > right, "<": left < right, ">=": left >= right, "<=": left <= right,
                  "==": left == right, "!=": left != right}[op])


class _Parser:
    def __init__(self, expression: str, lookup: Callable[[str], Value]) -> None:
        self.items = tokens(expression)
        self.position = 0
        self.lookup = lookup

    def parse(self) -> Value:
        value = self.comparison()
        if self.position != len(self.items):
            raise MetricMathError(f"unexpected {self.items[self.position]!r}")
        return value

    def peek(self) -> str | None:
        return self.items[self.position] if self.position < len(self.items) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise MetricMathError(f"expected {expected or 'a token'}, got {token!r}")
        self.position += 1
        return token

    def comparison(self) -> Value:
        left = self.additive()
        if self.peek() in (">", "<", ">=", "<=", "==", "!="):
            op = self.take()
            left = _arith(op, left, self.additive())
        return left

    def additive(self) -> Value:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            value = _arith(op, value, self.term())
        return value

    def term(self) -> Value:
        value = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            value = _arith(op, value, self.unary())
        return value

    def unary(self) -> Value:
        if self.peek() == "-":
            self.take()
            return _arith("*", -1.0, self.unary())
        return self.primary()

    def primary(self) -> Value:
        token = self.take()
        if token == "(":
            value = self.comparison()
            self.take(")")
            return value
        if re.fullmatch(r"\d+(?:\.\d+)?", token):
            return float(token)
        if self.peek() == "(":
            return self.call(token)
        return self.lookup(token)

    def call(self, name: str) -> Value:
        self.take("(")
        args = [self.comparison()]
        while self.peek() == ",":
            self.take(",")
            args.append(self.comparison())
        self.take(")")
        if name == "FILL" and len(args) == 2:
            return args[1] if args[0] is None else args[0]
        if name == "IF" and len(args) == 3:
            condition, when_true, when_false = args
            if condition is None:
                return None
            return when_true if condition != 0 else when_false
        raise MetricMathError(f"{name} with {len(args)} arguments is outside the modelled subset")


def evaluate(queries: list[dict[str, Any]], datapoints: Mapping[str, Value]) -> Value:
    """The value of the alarm's returned query, given a datapoint (or None) for every MetricStat query id."""
    by_id = {query["Id"]: query for query in queries}
    returned = [q for q in queries if q.get("ReturnData", True) and "ANOMALY_DETECTION_BAND" not in q.get("Expression", "")]
    if len(returned) != 1:
        raise MetricMathError(f"expected one returned query, got {[q['Id'] for q in returned]}")

    def value_of(query_id: str) -> Value:
        query = by_id.get(query_id)
        if query is None:
            raise MetricMathError(f"unknown id {query_id!r}")
        if "MetricStat" in query:
            return datapoints[query_id]
        return _Parser(query["Expression"], value_of).parse()

    return value_of(returned[0]["Id"])


def metric_stats(queries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """MetricStat query id → {"name": metric name, "dimensions": {name: value}}."""
    return {
        query["Id"]: {
            "name": query["MetricStat"]["Metric"]["MetricName"],
            "dimensions": {d["Name"]: d["Value"] for d in query["MetricStat"]["Metric"].get("Dimensions", [])},
        }
        for query in queries
        if "MetricStat" in query
    }
