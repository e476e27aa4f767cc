"""Deterministic example values for a JSON Schema.

Used to build tool call arguments and structured output. Two modes:

* ``all_properties=False`` (ordinary tool calls): only required properties,
  strings are ``"sim"``;
* ``all_properties=True`` (output tools and ``response_format``): every
  property, strings are the caller-supplied ``text``.

Rules: ``const`` -> its value, ``default`` -> the default, ``enum`` -> first
value, ``string`` -> text (well-known ``format`` values get a valid value),
``integer`` -> 1, ``number`` -> 1.0, ``boolean`` -> true, ``null`` -> null,
``array`` -> ``[]`` (or ``minItems`` items), ``object`` -> recurse. Numeric
bounds and string lengths are respected, local ``$ref`` pointers are followed,
and ``anyOf``/``oneOf`` pick the first non-null branch.
"""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 12

_FORMAT_VALUES: dict[str, str] = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "duration": "PT1S",
    "email": "sim@example.com",
    "uri": "https://example.com/sim",
    "url": "https://example.com/sim",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def example_value(schema: Any, *, all_properties: bool = False, text: str = "sim") -> Any:
    """An example value valid for ``schema`` (see the module rules)."""
    root = schema if isinstance(schema, dict) else {}
    return _value(schema, root, all_properties, text, 0)


def _resolve_ref(ref: str, root: dict[str, Any]) -> Any:
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for part in ref.lstrip("#").strip("/").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            return {}
        node = node[part]
    return node


def _is_null_schema(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null"


def _merge_all_of(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for branch in schema["allOf"]:
        if isinstance(branch, dict) and "$ref" in branch:
            branch = _resolve_ref(branch["$ref"], root)
        if not isinstance(branch, dict):
            continue
        for key, value in branch.items():
            if key == "properties":
                merged.setdefault("properties", {}).update(value)
            elif key == "required":
                merged["required"] = list(merged.get("required", [])) + list(value)
            else:
                merged.setdefault(key, value)
    return merged


def _value(schema: Any, root: dict[str, Any], full: bool, text: str, depth: int) -> Any:
    if not isinstance(schema, dict):
        return text if full else "sim"
    if "$ref" in schema:
        if depth >= MAX_DEPTH:
            return {}
        target = _resolve_ref(schema["$ref"], root)
        return _value(target, root, full, text, depth + 1)
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "allOf" in schema:
        return _value(_merge_all_of(schema, root), root, full, text, depth + 1)
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if branches:
            chosen = next((b for b in branches if not _is_null_schema(b)), None)
            return None if chosen is None else _value(chosen, root, full, text, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        if "properties" in schema:
            kind = "object"
        elif "items" in schema:
            kind = "array"
        else:
            kind = "string"
    if kind == "object":
        return _object(schema, root, full, text, depth)
    if kind == "array":
        count = int(schema.get("minItems", 0) or 0)
        if count == 0 or depth >= MAX_DEPTH:
            return []
        item = _value(schema.get("items", {}), root, full, text, depth + 1)
        return [item for _ in range(count)]
    if kind == "integer":
        return int(_number(schema, 1, integer=True))
    if kind == "number":
        return float(_number(schema, 1.0, integer=False))
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, text if full else "sim")


def _object(schema: dict[str, Any], root: dict[str, Any], full: bool, text: str, depth: int) -> dict[str, Any]:
    if depth >= MAX_DEPTH:
        return {}
    properties = schema.get("properties") or {}
    required = set(schema.get("required") or ())
    result: dict[str, Any] = {}
    for name, prop in properties.items():
        if full or name in required:
            result[name] = _value(prop, root, full, text, depth + 1)
    return result


def _number(schema: dict[str, Any], start: float, *, integer: bool) -> float:
    value = start
    step = 1 if integer else 0.5
    low = schema.get("minimum")
    if low is not None and value < low:
        value = math.ceil(low) if integer else low
    low_ex = schema.get("exclusiveMinimum")
    if isinstance(low_ex, (int, float)) and not isinstance(low_ex, bool) and value <= low_ex:
        value = math.floor(low_ex) + 1 if integer else low_ex + step
    high = schema.get("maximum")
    if high is not None and value > high:
        value = math.floor(high) if integer else high
    high_ex = schema.get("exclusiveMaximum")
    if isinstance(high_ex, (int, float)) and not isinstance(high_ex, bool) and value >= high_ex:
        value = math.ceil(high_ex) - 1 if integer else high_ex - step
    return value


def _string(schema: dict[str, Any], text: str) -> str:
    value = _FORMAT_VALUES.get(str(schema.get("format", "")), text)
    min_length = int(schema.get("minLength", 0) or 0)
    if len(value) < min_length:
        value = (value * (min_length // max(len(value), 1) + 1))[:min_length]
    max_length = schema.get("maxLength")
    if max_length is not None:
        value = value[: int(max_length)]
    return value
