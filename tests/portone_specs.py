"""PortOne's OpenAPI files as ``jsonschema`` validators, for checking our requests and fixture replies.

The files (``v1.openapi.json``, Swagger 2; ``v2.openapi.json``, OpenAPI 3.0) are
AGPL-licensed, so they are never copied into this repository: they are read
from ``PGPAY_PORTONE_SPECS`` (default ``/work/shared/specs/portone``), and the
tests that need them are skipped, with the reason, where they are absent.

What the specs say is adapted, not trusted blindly, where they do not match
PortOne's own replies:

* V1 ``maxLength`` values are strings (``"32"``): made integers.
* V1 replies carry ``null`` for the optional fields a payment does not use
  (``vbank_num`` of a card payment ...): optional properties accept ``null``.
* V1 ``PaymentPrepareAnnotation`` requires ``total``, ``previous`` and ``next``
  (copied from a paged list): that ``required`` is dropped.
* V2 ``oneOf`` + ``discriminator`` (the variants share an untyped ``status``)
  are turned into "the variant the discriminator names".
"""

from __future__ import annotations

import copy
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

SPECS = Path(os.environ.get("PGPAY_PORTONE_SPECS", "/work/shared/specs/portone"))
SKIP_REASON = f"PortOne OpenAPI files not found in {SPECS} (AGPL: read from there, never copied into the repo)"


def _load(name: str) -> dict:
    path = SPECS / name
    if not path.is_file():
        pytest.skip(SKIP_REASON)
    return json.loads(path.read_text("utf-8"))


def _walk(node: Any, fix) -> Any:
    if isinstance(node, dict):
        node = fix({k: _walk(v, fix) for k, v in node.items()})
    elif isinstance(node, list):
        node = [_walk(v, fix) for v in node]
    return node


# --- V1 (Swagger 2) -----------------------------------------------------------------------

_V1_TYPES = {"string": "string", "number": "number", "integer": "integer", "boolean": "boolean", "array": "array"}


def _v1_fix(node: dict) -> dict:
    if isinstance(node.get("maxLength"), str):
        node["maxLength"] = int(node["maxLength"])
    if "$ref" in node and node["$ref"].startswith("#/definitions/"):
        node["$ref"] = "#/$defs/" + node["$ref"][len("#/definitions/") :]
    props = node.get("properties")
    if isinstance(props, dict):
        required = set(node.get("required") or ())
        for name, schema in props.items():
            if name not in required and isinstance(schema, dict):
                props[name] = {"anyOf": [schema, {"type": "null"}]}
    return node


@lru_cache(maxsize=1)
def _v1() -> dict:
    spec = _load("v1.openapi.json")
    definitions = copy.deepcopy(spec["definitions"])
    definitions["PaymentPrepareAnnotation"].pop("required", None)
    return {"spec": spec, "defs": _walk(definitions, _v1_fix)}


def v1_reply(definition: str) -> Draft202012Validator:
    """A validator for a V1 reply envelope named in ``definitions`` (``PaymentResponse``, ``AuthResponse`` ...)."""
    defs = _v1()["defs"]
    return Draft202012Validator({"$ref": f"#/$defs/{definition}", "$defs": defs})


def v1_request(method: str, path: str) -> Draft202012Validator:
    """A validator for the JSON body of a V1 call, built from its ``formData`` parameters; unknown keys refused."""
    operation = _v1()["spec"]["paths"][path][method.lower()]
    properties, required = {}, []
    for parameter in operation.get("parameters", ()):
        if parameter.get("in") not in ("formData", "body"):
            continue
        schema = {"type": _V1_TYPES[parameter["type"]]}
        if "maxLength" in parameter:
            schema["maxLength"] = int(parameter["maxLength"])
        properties[parameter["name"]] = schema
        if parameter.get("required"):
            required.append(parameter["name"])
    return Draft202012Validator({"type": "object", "properties": properties, "required": required, "additionalProperties": False})


def v1_query_parameters(method: str, path: str) -> set[str]:
    operation = _v1()["spec"]["paths"][path][method.lower()]
    return {p["name"] for p in operation.get("parameters", ()) if p.get("in") == "query"}


# --- V2 (OpenAPI 3.0) ---------------------------------------------------------------------


def _v2_fix(node: dict) -> dict:
    if "$ref" in node and node["$ref"].startswith("#/components/schemas/"):
        node["$ref"] = "#/$defs/" + node["$ref"][len("#/components/schemas/") :]
    discriminator = node.get("discriminator")
    if isinstance(discriminator, dict) and "oneOf" in node and discriminator.get("mapping"):
        name = discriminator["propertyName"]
        mapping = {k: "#/$defs/" + v.rsplit("/", 1)[1] for k, v in discriminator["mapping"].items()}
        node = {
            "type": "object",
            "required": [name],
            "properties": {name: {"enum": sorted(mapping)}},
            "allOf": [{"if": {"properties": {name: {"const": key}}}, "then": {"$ref": ref}} for key, ref in sorted(mapping.items())],
        }
    return node


@lru_cache(maxsize=1)
def _v2() -> dict:
    spec = _load("v2.openapi.json")
    return {"spec": spec, "defs": _walk(copy.deepcopy(spec["components"]["schemas"]), _v2_fix)}


def v2(schema: str, *, closed: bool = False) -> Draft202012Validator:
    """A validator for one V2 component schema; ``closed`` refuses keys the schema does not name (for our requests)."""
    defs = _v2()["defs"]
    root: dict = {"$ref": f"#/$defs/{schema}", "$defs": defs}
    if closed:
        root["unevaluatedProperties"] = False
    return Draft202012Validator(root)


def v2_operation(method: str, path: str) -> dict:
    return _v2()["spec"]["paths"][path][method.lower()]


def errors(validator: Draft202012Validator, instance: Any) -> list[str]:
    """Every validation error, as ``path: message`` lines (empty when valid)."""
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in validator.iter_errors(instance)]
