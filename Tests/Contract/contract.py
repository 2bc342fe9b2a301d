"""ExamHub v1 wire contract helper.

Loads the machine-readable contract from ``Protocols/`` (JSON Schema draft 2020-12 files,
``index.json``) and validates frames against it::

    import contract
    contract.validate_request({"op": "ping", "id": 1})
    contract.validate_reply("ping", {"op": "reply", "id": 1, "ok": True, "data": {"serverTime": "..."}})
    contract.validate_event(frame)

Every ``validate_*`` raises ``jsonschema.ValidationError`` on a mismatch (also for an unknown op or event
type). $refs between the schema files resolve through a ``referencing.Registry`` holding every file
under ``Protocols/schemas`` keyed by its ``$id``; nothing is fetched from the network.
"""
from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any, Iterator

import jsonschema
from jsonschema import Draft202012Validator, ValidationError
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT202012

PROTOCOLS = Path(os.environ.get("EXAMHUB_PROTOCOLS",
                                 Path(__file__).resolve().parents[2] / "Protocols"))
SCHEMAS = PROTOCOLS / "schemas"
EXAMPLES = PROTOCOLS / "examples"

__all__ = ["PROTOCOLS", "SCHEMAS", "EXAMPLES", "ValidationError", "index", "registry", "schema",
           "validator", "validate", "validate_request", "validate_reply", "validate_event",
           "validate_server_frame", "schema_files", "ops", "event_types"]


def _load(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def schema_files() -> Iterator[Path]:
    """Every schema file under Protocols/schemas, sorted."""
    return iter(sorted(SCHEMAS.rglob("*.json")))


@functools.lru_cache(maxsize=None)
def index() -> dict:
    return _load(PROTOCOLS / "index.json")


def ops() -> list[str]:
    return sorted(index()["ops"])


def event_types() -> list[str]:
    return sorted(index()["events"])


def _no_network(uri: str):
    raise NoSuchResource(ref=uri)


@functools.lru_cache(maxsize=None)
def _schemas_by_path() -> dict[str, dict]:
    return {p.relative_to(PROTOCOLS).as_posix(): _load(p) for p in schema_files()}


@functools.lru_cache(maxsize=None)
def registry() -> Registry:
    resources = []
    for rel, contents in _schemas_by_path().items():
        uri = contents.get("$id")
        if not uri:
            raise ValueError(f"{rel} has no $id")
        resources.append((uri, Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry(retrieve=_no_network).with_resources(resources).crawl()


def schema(rel: str) -> dict:
    """A schema by its path relative to Protocols/ (e.g. 'schemas/ops/hello.request.json')."""
    try:
        return _schemas_by_path()[rel]
    except KeyError:
        raise KeyError(f"no schema file {rel}") from None


@functools.lru_cache(maxsize=None)
def validator(rel: str) -> Draft202012Validator:
    return Draft202012Validator(schema(rel), registry=registry(),
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def validate(rel: str, instance: Any) -> None:
    """Validate against one schema, raising the most relevant ValidationError."""
    error = jsonschema.exceptions.best_match(validator(rel).iter_errors(instance))
    if error is not None:
        raise error


def _fail(message: str, instance: Any) -> None:
    raise ValidationError(message, instance=instance)


def validate_request(frame: dict) -> None:
    """A client -> server frame: the generic envelope, then the schema of its op."""
    validate("schemas/envelope.client.json", frame)
    op = frame["op"]
    entry = index()["ops"].get(op)
    if entry is None:
        _fail(f"unknown op {op!r}", frame)
    validate(entry["request"], frame)


def validate_reply(op: str, frame: dict) -> None:
    """A reply to `op`: the ok schema of the op when frame['ok'] is True, else the error reply schema."""
    entry = index()["ops"].get(op)
    if entry is None:
        _fail(f"unknown op {op!r}", frame)
    if isinstance(frame, dict) and frame.get("ok") is True:
        validate(entry["reply"], frame)
    else:
        validate(index()["errorReply"], frame)


def validate_event(frame: dict) -> None:
    """A server push event, by its `type`."""
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        _fail("an event frame is an object with a string `type`", frame)
    rel = index()["events"].get(frame["type"])
    if rel is None:
        _fail(f"unknown event type {frame['type']!r}", frame)
    validate(rel, frame)


def validate_server_frame(frame: dict, op: str | None = None) -> None:
    """Any server -> client frame. Replies are checked against their op's schema when `op` is given."""
    if isinstance(frame, dict) and frame.get("op") == "event":
        validate_event(frame)
    elif isinstance(frame, dict) and frame.get("op") == "reply" and op is not None:
        validate_reply(op, frame)
    else:
        validate("schemas/envelope.server.json", frame)


if __name__ == "__main__":  # python3 Tests/Contract/contract.py request|event|reply:<op> < frames.jsonl
    import sys
    kind = sys.argv[1] if len(sys.argv) > 1 else "server"
    bad = 0
    for n, line in enumerate(sys.stdin, start=1):
        if not line.strip():
            continue
        frame = json.loads(line)
        try:
            if kind == "request":
                validate_request(frame)
            elif kind == "event":
                validate_event(frame)
            elif kind.startswith("reply:"):
                validate_reply(kind.split(":", 1)[1], frame)
            else:
                validate_server_frame(frame)
        except ValidationError as e:
            bad += 1
            print(f"line {n}: {e.message} at {list(e.absolute_path)}", file=sys.stderr)
    sys.exit(1 if bad else 0)
