"""Each AWS API request the provider sends, parsed into its operation's input and checked.

moto accepts whatever it is sent, so the emulator would pass requests that AWS refuses. This
module reads one HTTP request the way AWS does and checks it before moto sees it:

- `parse` finds the service (from the SigV4 credential scope, through botocore's models'
  signing names) and the operation, and rebuilds the operation's input in botocore's input
  shape from whichever wire protocol carried it: `query`, `ec2`, `json`, `rest-json`,
  `rest-xml` or `smithy-rpc-v2-cbor`;
- `check` walks that input against botocore's model (required members, types, lengths,
  sizes, ranges, enums, patterns) and against `aws_rules`, returning `Violation`s;
- `Checked` is the WSGI middleware in front of moto that refuses a request with violations
  the way AWS would (HTTP 400 in the protocol's error format) and records what it saw.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import gzip
import io
import json
import os
import re
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, quote, unquote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

from scripts.emulator import aws_rules

# Protocol names as botocore's models spell them.
QUERY, EC2, JSON, REST_JSON, REST_XML, CBOR = (
    "query",
    "ec2",
    "json",
    "rest-json",
    "rest-xml",
    "smithy-rpc-v2-cbor",
)
_MISSING = object()


@dataclass(frozen=True)
class Call:
    """One request as an operation call; `unparsed` says why it could not be read as one."""

    service: str | None
    operation: str | None
    params: dict[str, Any]
    protocol: str | None
    request: str = ""  # "METHOD /path", for reports
    unparsed: str | None = None

    @property
    def parsed(self) -> bool:
        return self.unparsed is None

    def __str__(self) -> str:
        if self.parsed:
            return f"{self.service} {self.operation} ({self.protocol}): {self.request}"
        return f"{self.request}: {self.unparsed}"


@dataclass(frozen=True)
class Violation:
    service: str
    operation: str
    member: str  # readable path with indexes: IpPermissions[0].IpRanges[0].Description
    value: str  # shown, truncated, or [redacted]
    rule: str
    source: str

    def __str__(self) -> str:
        return (
            f"{self.service} {self.operation}: {self.member} = {self.value} breaks "
            f"{self.rule} (source: {self.source})"
        )


# --- botocore's models ----------------------------------------------------------------------


_LOADING = threading.Lock()


def service_model(service: str):
    # One loaded model per service for this module and `aws_rules` alike; the server's
    # threads must not load one concurrently through the same botocore session.
    with _LOADING:
        return aws_rules._service_model(service)


@cache
def _all_metadata() -> dict[str, dict[str, Any]]:
    """Every service's model metadata, read from the head of each model file.

    Loading all ~440 models whole takes seconds; their metadata sits within the first few
    kilobytes, so the index of signing names costs a tenth of a second instead.
    """
    import botocore.session

    loader = botocore.session.get_session().get_component("data_loader")
    return {
        name: _head_metadata(loader, name) for name in loader.list_available_services("service-2")
    }


def _head_metadata(loader, name: str) -> dict[str, Any]:
    version = loader.determine_latest_version(name, "service-2")
    for root in loader.search_paths:
        for suffix, opener in ((".json", open), (".json.gz", gzip.open)):
            path = os.path.join(root, name, version, f"service-2{suffix}")
            if not os.path.isfile(path):
                continue
            with opener(path, "rt", encoding="utf-8") as file:
                head = file.read(16384)
            at = head.find('"metadata"')
            try:
                if at >= 0:
                    return json.JSONDecoder().raw_decode(head, head.index("{", at))[0]
            except ValueError:
                pass
            break
    return loader.load_service_model(name, "service-2")["metadata"]


@cache
def _index() -> dict[str, dict[str, list[str]]]:
    """Services by signing name, by JSON target prefix and by API version."""
    index: dict[str, dict[str, list[str]]] = {"signing": {}, "target": {}, "version": {}}
    for name, metadata in sorted(_all_metadata().items()):
        signing = metadata.get("signingName") or metadata.get("endpointPrefix")
        for kind, key in (
            ("signing", signing),
            ("target", metadata.get("targetPrefix")),
            ("version", metadata.get("apiVersion")),
        ):
            if key:
                index[kind].setdefault(key, []).append(name)
    return index


def protocols(service: str) -> list[str]:
    """The wire protocols a service's model says it accepts, its preferred one first."""
    metadata = _all_metadata()[service]
    found = [metadata["protocol"], *metadata.get("protocols", ())]
    return list(dict.fromkeys(found))


def _candidates(kind: str, key: str | None, prefer: str | None = None) -> list[str]:
    names = list(_index()[kind].get(key or "", ()))
    # A service named like its signing name is the likelier one (lambda before lambda-web).
    return sorted(names, key=lambda name: name != prefer)


# --- the request --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    method: str
    path: str  # still percent-encoded
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names
    body: bytes

    @property
    def where(self) -> str:
        return f"{self.method} {unquote(self.path)}"

    def first(self, key: str) -> str | None:
        return next((v for k, v in self.query if k == key), None)


def _request(method, path, query_string, headers, body) -> _Request:
    lowered = {k.lower(): v for k, v in headers.items()}
    return _Request(
        method.upper(),
        path or "/",
        parse_qsl(query_string or "", keep_blank_values=True),
        lowered,
        _decoded_body(body or b"", lowered),
    )


def _decoded_body(body: bytes, headers: dict[str, str]) -> bytes:
    encodings = headers.get("content-encoding", "").lower()
    streaming = headers.get("x-amz-content-sha256", "").startswith("STREAMING-")
    if "aws-chunked" in encodings or streaming:
        body = _dechunk(body)
    if "gzip" in encodings:  # request compression (CloudWatch PutMetricData)
        with contextlib.suppress(OSError, EOFError):
            body = gzip.decompress(body)
    return body


def _dechunk(body: bytes) -> bytes:
    """The payload of an `aws-chunked` body: `size;chunk-signature=...\\r\\ndata\\r\\n`..."""
    out, at = bytearray(), 0
    while at < len(body):
        end = body.find(b"\r\n", at)
        if end < 0:
            break
        try:
            size = int(body[at:end].split(b";")[0], 16)
        except ValueError:
            return body  # not chunked after all
        if size == 0:
            break  # trailers follow
        out += body[end + 2 : end + 2 + size]
        at = end + 2 + size + 2
    return bytes(out)


def _signing_name(request: _Request) -> str | None:
    credential = re.search(r"Credential=([^,\s]+)", request.headers.get("authorization", ""))
    scope = credential.group(1) if credential else request.first("X-Amz-Credential")
    parts = scope.split("/") if scope else []
    # AKID/date/region/service/aws4_request, or AKID/date/service/aws4_request for SigV4a
    return parts[-2] if len(parts) >= 4 and parts[-1] == "aws4_request" else None


def _wire(request: _Request) -> str:
    """Which family of protocol a request is written in, from its headers and form."""
    content_type = request.headers.get("content-type", "").lower()
    if request.headers.get("smithy-protocol") == "rpc-v2-cbor" or "cbor" in content_type:
        return CBOR
    if "x-amz-target" in request.headers:
        return JSON
    # Query-protocol requests go to the root; elsewhere a form body is some object's content.
    if request.path == "/" and _form_pairs(request) is not None:
        return QUERY
    return "rest"


def _form_pairs(request: _Request) -> list[tuple[str, str]] | None:
    """The query protocol's parameters (query string and form body), when there is an Action."""
    pairs = list(request.query)
    if "x-www-form-urlencoded" in request.headers.get("content-type", "").lower():
        pairs += parse_qsl(request.body.decode("utf-8", "replace"), keep_blank_values=True)
    if any(k == "Action" for k, _ in pairs):
        return pairs
    return None


# --- parse ----------------------------------------------------------------------------------


def parse(
    method: str, path: str, query_string: str, headers: Mapping[str, str], body: bytes
) -> Call | None:
    """The operation call one HTTP request makes; None for moto's own endpoints.

    `path` is the raw (percent-encoded) path, `query_string` the raw query string.
    """
    if path.startswith("/moto-api"):
        return None
    request = _request(method, path, query_string, headers, body)
    wire = _wire(request)
    signing = _signing_name(request)
    try:
        return _PARSERS[wire](request, signing)
    except _Unparsed as why:
        return Call(None, None, {}, None, request.where, str(why))


class _Unparsed(Exception):
    """The request cannot be read as an operation call (the message says why)."""


def _services(signing: str | None, kind: str, key: str | None) -> list[str]:
    """The candidate services: by signature when signed, else by `kind` (target or version)."""
    if signing:
        names = _candidates("signing", signing, prefer=signing)
        if not names:
            raise _Unparsed(f"no botocore model signs as {signing!r}")
        return names
    names = _candidates(kind, key)
    if not names:
        raise _Unparsed("unsigned, and nothing else in it names a service")
    return names


def _accepting(service: str, wire: str) -> str | None:
    """The model protocol `service` reads a `wire`-family request with, if it accepts one."""
    accepted = protocols(service)
    if wire == "rest":
        return next((p for p in accepted if p in (REST_JSON, REST_XML)), None)
    if wire == QUERY:
        return next((p for p in accepted if p in (EC2, QUERY)), None)
    return wire if wire in accepted else None


def _operation(service: str, name: str):
    model = service_model(service)
    return model.operation_model(name) if name in model.operation_names else None


def _parse_json(request: _Request, signing: str | None) -> Call:
    prefix, _, name = request.headers["x-amz-target"].rpartition(".")
    for service in _services(signing, "target", prefix):
        metadata = _all_metadata()[service]
        operation = _operation(service, name)
        if metadata.get("targetPrefix") != prefix or operation is None:
            continue
        if _accepting(service, JSON) is None:
            raise _Unparsed(f"{service} does not take JSON ({', '.join(protocols(service))})")
        document = _json_body(request.body)
        params = _from_document(document, operation.input_shape)
        return Call(service, name, params, JSON, request.where)
    raise _Unparsed(f"no operation for X-Amz-Target {request.headers['x-amz-target']!r}")


def _json_body(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise _Unparsed(f"body is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise _Unparsed("body is not a JSON object")
    return document


def _parse_cbor(request: _Request, signing: str | None) -> Call:
    found = re.fullmatch(r"/service/([^/]+)/operation/([^/]+)", unquote(request.path))
    if not found:
        raise _Unparsed("a CBOR request outside /service/{Service}/operation/{Operation}")
    prefix, name = found.groups()
    for service in _services(signing, "target", prefix):
        operation = _operation(service, name)
        if _all_metadata()[service].get("targetPrefix") != prefix or operation is None:
            continue
        if _accepting(service, CBOR) is None:
            raise _Unparsed(f"{service} does not take rpc-v2-cbor")
        params = _from_document(_cbor_body(request.body), operation.input_shape)
        return Call(service, name, params, CBOR, request.where)
    raise _Unparsed(f"no operation {prefix}.{name}")


def _cbor_body(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    # botocore's own CBOR decoder (written for responses; a data item is a data item).
    from botocore.parsers import RpcV2CBORParser

    decoder = RpcV2CBORParser()
    try:
        document = decoder.parse_data_item(decoder.get_peekable_stream_from_bytes(body))
    except Exception as exc:  # the decoder raises several kinds on malformed input
        raise _Unparsed(f"body is not CBOR ({exc})") from None
    if not isinstance(document, dict):
        raise _Unparsed("body is not a CBOR map")
    return document


def _parse_query(request: _Request, signing: str | None) -> Call:
    pairs = _form_pairs(request) or []
    fields = dict(pairs)
    name, version = fields.get("Action", ""), fields.get("Version")
    services = _services(signing, "version", version)
    # elb and elbv2 share a signing name; only the API version tells them apart.
    by_version = [s for s in services if _all_metadata()[s].get("apiVersion") == version]
    for service in by_version or services:
        operation = _operation(service, name)
        if operation is None:
            continue
        protocol = _accepting(service, QUERY)
        if protocol is None:
            raise _Unparsed(f"{service} does not take the query protocol")
        tree = _tree((k, v) for k, v in pairs if k not in ("Action", "Version"))
        params = _from_query_struct(tree, operation.input_shape, protocol == EC2)
        return Call(service, name, params, protocol, request.where)
    raise _Unparsed(f"no operation for Action={name!r} Version={version!r}")


def _parse_rest(request: _Request, signing: str | None) -> Call:
    # Only a signature names the service of a REST request (an unsigned one has no key).
    services = _services(signing, "signing", None)
    scored = []
    for service in services:
        protocol = _accepting(service, "rest")
        for route in _routes(service, protocol) if protocol else ():
            found = route.match(request)
            if found is not None:
                score, labels = found
                scored.append(((score, service == signing), route, service, labels))
    if not scored:
        raise _Unparsed(f"no {'/'.join(services)} operation at {request.where}")
    # The most specific route wins; a tie keeps the service named as it signs.
    _, route, service, labels = max(scored, key=lambda s: s[0])
    operation = service_model(service).operation_model(route.operation)
    params = _from_rest(request, operation.input_shape, labels, route, route.protocol)
    return Call(service, route.operation, params, route.protocol, request.where)


_PARSERS: dict[str, Callable[[_Request, str | None], Call]] = {
    JSON: _parse_json,
    CBOR: _parse_cbor,
    QUERY: _parse_query,
    "rest": _parse_rest,
}


# --- REST routes ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Route:
    operation: str
    protocol: str
    method: str
    pattern: re.Pattern[str]
    labels: tuple[str, ...]  # the template's label names, by group
    literal_query: tuple[tuple[str, str], ...]  # "?acl", "?list-type=2" in the template
    literal_length: int
    required: tuple[str, ...]  # query keys ("k") and headers ("h:k") the input requires
    declared: frozenset[str]  # every query key and header the input reads, likewise
    deprecated: bool

    def match(self, request: _Request) -> tuple[tuple, dict[str, str]] | None:
        if request.method != self.method:
            return None
        found = self.pattern.fullmatch(request.path)
        if not found:
            return None
        keys = {k for k, _ in request.query}
        # SDKs name the operation in x-id where several share a path (S3's PutObject...).
        if request.first("x-id") not in (None, self.operation):
            return None
        for key, value in self.literal_query:
            # x-id only confirms the operation; an SDK may leave it out.
            if key == "x-id" and key not in keys:
                continue
            if key not in keys or (value and request.first(key) != value):
                return None
        # Evidence for an operation: the query keys and headers it reads that the request has,
        # not counting those every HTTP client sends anyway.
        present = keys | {f"h:{h}" for h in request.headers if h not in _FRAMING_HEADERS}
        labels = {name: found.group(f"l{i}") for i, name in enumerate(self.labels)}
        required = sum(r in present for r in self.required)
        score = (
            required == len(self.required),
            len(self.literal_query),
            required,
            len(self.declared & present),
            self.literal_length,
            not self.deprecated,
        )
        return score, labels


_FRAMING_HEADERS = frozenset(("content-length", "content-type", "host", "authorization"))


@cache
def _routes(service: str, protocol: str) -> tuple[_Route, ...]:
    model = service_model(service)
    return tuple(
        _route(model.operation_model(name), protocol)
        for name in model.operation_names
        if "requestUri" in model.operation_model(name).http
    )


def _route(operation, protocol: str) -> _Route:
    template = operation.http["requestUri"]
    path, _, query = template.partition("?")
    labels: list[str] = []
    pattern, literal = "", 0
    for piece in re.split(r"(\{[^}]+\})", path):
        if piece.startswith("{"):
            name = piece[1:-1]
            greedy = name.endswith("+")
            pattern += f"(?P<l{len(labels)}>{'.+' if greedy else '[^/]+'})"
            labels.append(name.removesuffix("+"))
        else:
            pattern += re.escape(piece)
            literal += len(piece)
    # SDKs differ on a template's trailing slash (Route53's `.../rrset/`; the Go SDK sends
    # `.../rrset`): either matches.
    pattern = pattern.removesuffix("/") + "/?"
    required, declared = [], set()
    shape = operation.input_shape
    for name, member in shape.members.items() if shape else ():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        key = {"querystring": wire, "header": f"h:{wire.lower()}"}.get(location or "")
        if key and member.type_name != "map":
            declared.add(key)
            if name in shape.required_members:
                required.append(key)
    return _Route(
        operation=operation.name,
        protocol=protocol,
        method=operation.http.get("method", "POST").upper(),
        pattern=re.compile(pattern),
        labels=tuple(labels),
        literal_query=tuple(parse_qsl(query, keep_blank_values=True)),
        literal_length=literal,
        required=tuple(required),
        declared=frozenset(declared),
        deprecated=bool(operation.deprecated),
    )


def _from_rest(request: _Request, shape, labels: dict[str, str], route: _Route, protocol: str):
    if shape is None:
        return {}
    params: dict[str, Any] = {}
    claimed = {"x-id", *(k for k, _ in route.literal_query)}
    for name, member in shape.members.items():
        location = member.serialization.get("location")
        wire = member.serialization.get("name", name)
        if location == "uri" and wire in labels:
            params[name] = _scalar(unquote(labels[wire]), member)
        elif location == "querystring" and member.type_name != "map":
            values = [v for k, v in request.query if k == wire]
            claimed.add(wire)
            if values:
                params[name] = _query_string_value(values, member)
        elif location == "header" and wire.lower() in request.headers:
            params[name] = _header_value(request.headers[wire.lower()], member)
        elif location == "headers" and (found := _prefixed(request.headers, wire.lower())):
            params[name] = found
    for name, member in shape.members.items():
        # A querystring map takes every parameter no other member claims (API Gateway's).
        if member.serialization.get("location") == "querystring" and member.type_name == "map":
            rest = {k: v for k, v in request.query if k not in claimed}
            if rest:
                params[name] = rest
    params.update(_rest_body(request, shape, protocol))
    return params


def _prefixed(headers: dict[str, str], prefix: str) -> dict[str, str]:
    return {h[len(prefix) :]: v for h, v in headers.items() if h.startswith(prefix)}


def _query_string_value(values: list[str], member) -> Any:
    if member.type_name == "list":
        return [_scalar(v, member.member) for v in values]
    return _scalar(values[0], member)


def _header_value(text: str, member) -> Any:
    if member.type_name == "list":
        return [_scalar(item, member.member) for item in _header_items(text)]
    if member.type_name == "string" and member.serialization.get("jsonvalue"):
        try:
            return json.loads(base64.b64decode(text))
        except (ValueError, binascii.Error):
            return text
    return _scalar(text, member)


def _header_items(text: str) -> list[str]:
    """A header list: comma-separated, an item in double quotes when it holds , or "."""
    items = [m.group(1) for m in re.finditer(r'\s*("(?:[^"\\]|\\.)*"|[^,]*)\s*(?:,|$)', text)]
    items = items[:-1] if len(items) > 1 and items[-1] == "" else items
    return [i[1:-1].replace('\\"', '"') if i.startswith('"') else i.strip() for i in items]


def _rest_body(request: _Request, shape, protocol: str) -> dict[str, Any]:
    payload = shape.serialization.get("payload")
    if payload:
        member = shape.members[payload]
        if member.type_name == "blob":
            return {payload: request.body} if request.body else {}
        if member.type_name == "string":
            return {payload: request.body.decode("utf-8", "replace")} if request.body else {}
        value = _body_document(request.body, member, protocol)
        # SDKs send `{}` for an absent structure payload in rest-json.
        return {} if value is _MISSING or value == {} else {payload: value}
    body_shape = _BodyMembers(shape)
    value = _body_document(request.body, body_shape, protocol)
    return {} if value is _MISSING else value


def _body_document(body: bytes, shape, protocol: str) -> Any:
    if not body.strip():
        return _MISSING
    if protocol == REST_JSON:
        return _from_document(_json_body(body), shape)
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise _Unparsed(f"body is not XML ({exc})") from None
    return _from_xml(root, shape)


class _BodyMembers:
    """The members of an input shape that travel in the body (those without a `location`),
    as a shape the body decoders read."""

    type_name = "structure"
    is_document_type = False

    def __init__(self, shape) -> None:
        self.members = {k: m for k, m in shape.members.items() if "location" not in m.serialization}
        self.serialization = shape.serialization


# --- values from each wire form -------------------------------------------------------------


def _scalar(text: Any, shape) -> Any:
    """A scalar from its text (query, XML, URI, header); left as text when it is not one,
    so that `check` reports the wrong type as AWS would."""
    if not isinstance(text, str):
        return text
    kind = shape.type_name
    try:
        if kind in ("integer", "long") and re.fullmatch(r"[+-]?\d+", text.strip()):
            return int(text)
        if kind in ("float", "double"):
            return float(text)
        if kind == "boolean" and text.lower() in ("true", "false"):
            return text.lower() == "true"
        if kind == "timestamp":
            return _timestamp(text)
        if kind == "blob":
            return base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error, OverflowError):
        pass
    return text


def _timestamp(value: Any) -> Any:
    from botocore.utils import parse_timestamp

    if isinstance(value, datetime.datetime):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+(\.\d+)?", value.strip()):
        value = float(value)
    try:
        return parse_timestamp(value)
    except (ValueError, TypeError, OverflowError):
        return value


def _from_document(value: Any, shape) -> Any:
    """A value from a JSON or CBOR document: members by their serialized names, blobs from
    base64 (JSON) or bytes (CBOR), timestamps from epoch seconds or text."""
    if shape is None:  # an operation without input
        return {}
    kind = shape.type_name
    if kind == "structure" and not getattr(shape, "is_document_type", False):
        if not isinstance(value, dict):
            return value
        out = {}
        for name, member in shape.members.items():
            wire = member.serialization.get("name", name)
            if value.get(wire) is not None:
                out[name] = _from_document(value[wire], member)
        return out
    if kind == "list" and isinstance(value, list):
        return [_from_document(item, shape.member) for item in value]
    if kind == "map" and isinstance(value, dict):
        return {k: _from_document(v, shape.value) for k, v in value.items() if v is not None}
    if kind == "timestamp" and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return _timestamp(value)
    if kind == "blob" and isinstance(value, str):
        return _scalar(value, shape)
    if kind in ("float", "double") and isinstance(value, str):
        # JSON cannot carry NaN and infinities as numbers; AWS's protocols send them as text.
        return float(value) if value in ("NaN", "Infinity", "-Infinity") else value
    return value


def _tree(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Query parameters as a tree by their dotted names; a value sits under the key ""."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        node = root
        for part in key.split("."):
            node = node.setdefault(part, {})
        node[""] = value
    return root


def _query_name(member, name: str, ec2: bool) -> str:
    if not ec2:
        return member.serialization.get("name", name)
    if "queryName" in member.serialization:
        return member.serialization["queryName"]
    wire = member.serialization.get("name")
    # The ec2 protocol capitalizes a locationName on input.
    return wire[0].upper() + wire[1:] if wire else name


def _from_query_struct(node: dict[str, Any], shape, ec2: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if shape is None:
        return out
    for name, member in shape.members.items():
        key = _query_name(member, name, ec2)
        flattened_name = member.type_name == "list" and member.serialization.get("flattened")
        if flattened_name and not ec2 and member.member.serialization.get("name"):
            # A flattened list whose member has a name repeats under that name instead.
            key = member.member.serialization["name"]
        if key in node:
            value = _from_query(node[key], member, ec2)
            if value is not _MISSING:
                out[name] = value
    return out


def _indexed(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node[k] for k in sorted((k for k in node if k.isdigit()), key=int)]


def _from_query(node: dict[str, Any], shape, ec2: bool) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return _from_query_struct(node, shape, ec2)
    if kind == "list":
        if ec2 or shape.serialization.get("flattened"):
            items = node
        else:
            items = node.get(shape.member.serialization.get("name", "member"), {})
        return [_from_query(item, shape.member, ec2) for item in _indexed(items)]
    if kind == "map":
        entries = node if shape.serialization.get("flattened") else node.get("entry", {})
        key_name = shape.key.serialization.get("name", "key")
        value_name = shape.value.serialization.get("name", "value")
        out = {}
        for entry in _indexed(entries):
            if key_name in entry:
                value = _from_query(entry.get(value_name, {}), shape.value, ec2)
                out[entry[key_name].get("", "")] = None if value is _MISSING else value
        return out
    return _scalar(node[""], shape) if "" in node else _MISSING


def _local(tag: str) -> str:
    return tag.rpartition("}")[2].rpartition(":")[2]


def _from_xml(element: ElementTree.Element, shape) -> Any:
    kind = shape.type_name
    if kind == "structure":
        return _from_xml_struct(element, shape)
    if kind == "list":
        item = shape.member.serialization.get("name", "member")
        return [_from_xml(c, shape.member) for c in element if _local(c.tag) == item]
    if kind == "map":
        return _xml_map(list(element), shape)
    return _scalar(element.text or "", shape)


def _from_xml_struct(element: ElementTree.Element, shape) -> dict[str, Any]:
    out: dict[str, Any] = {}
    attributes = {_local(k): v for k, v in element.attrib.items()}
    for name, member in shape.members.items():
        wire = member.serialization.get("name", name)
        if member.serialization.get("xmlAttribute"):
            if _local(wire) in attributes:
                out[name] = _scalar(attributes[_local(wire)], member)
            continue
        children = [c for c in element if _local(c.tag) == wire]
        if not children:
            continue
        if member.serialization.get("flattened") and member.type_name == "list":
            out[name] = [_from_xml(c, member.member) for c in children]
        elif member.serialization.get("flattened") and member.type_name == "map":
            out[name] = _xml_map(children, member, entry=None)
        else:
            out[name] = _from_xml(children[0], member)
    return out


def _xml_map(nodes: list[ElementTree.Element], shape, entry: str | None = "entry") -> dict:
    key_name = shape.key.serialization.get("name", "key")
    value_name = shape.value.serialization.get("name", "value")
    out = {}
    for node in nodes:
        if entry and _local(node.tag) != entry:
            continue
        key = next((c for c in node if _local(c.tag) == key_name), None)
        value = next((c for c in node if _local(c.tag) == value_name), None)
        if key is not None:
            out[key.text or ""] = None if value is None else _from_xml(value, shape.value)
    return out


# --- check ----------------------------------------------------------------------------------

# Members whose values are key material or secrets, whatever the model says of them.
_SECRET_NAME = re.compile(
    r"secret(string|binary|accesskey|value)?$|privatekey|password|passphrase|keymaterial"
    r"|plaintext|sessiontoken|authtoken|credentials?$",
    re.IGNORECASE,
)
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "boolean": (bool,),
    "timestamp": (datetime.datetime,),
    "blob": (bytes, bytearray),
    "list": (list,),
    "map": (dict,),
    "structure": (dict,),
}
REDACTED = "[redacted]"


def check(call: Call) -> list[Violation]:
    """Every way `call`'s input breaks botocore's model or an `aws_rules` rule."""
    if not call.parsed:
        return []
    operation = service_model(call.service).operation_model(call.operation)
    walk = _Walk(call.service, call.operation)
    if operation.input_shape is not None:
        walk.value(call.params, operation.input_shape, "", "", secret=False)
    if operation.input_shape is not None:
        walk.rules(call.params, operation.input_shape)
    return walk.found


def show(value: Any, limit: int = 120) -> str:
    """A value as a report shows it: repr-like, one line, at most about `limit` characters."""
    if isinstance(value, (bytes, bytearray)):
        text = f"<{len(value)} bytes>"
    elif isinstance(value, datetime.datetime):
        text = value.isoformat()
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, default=str)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class _Walk:
    service: str
    operation: str
    found: list[Violation] = field(default_factory=list)

    def add(self, where: str, value: Any, rule: str, source: str, secret: bool) -> None:
        shown = "(missing)" if value is _MISSING else REDACTED if secret else show(value)
        member = where or "(input)"
        self.found.append(Violation(self.service, self.operation, member, shown, rule, source))

    def model(self, where: str, model_path: str, value: Any, rule: str, secret: bool) -> None:
        source = f"botocore model {self.service} {self.operation} {model_path or '(input)'}"
        self.add(where, value, rule, source, secret)

    def value(self, value: Any, shape, where: str, model_path: str, secret: bool) -> None:
        secret = secret or bool(shape.metadata.get("sensitive"))
        kind = shape.type_name
        if getattr(shape, "is_document_type", False):
            return
        expected = _TYPES.get(kind)
        wrong_bool = isinstance(value, bool) and kind != "boolean"  # bool is an int in Python
        if expected and (not isinstance(value, expected) or wrong_bool):
            self.model(where, model_path, value, f"type {kind}", secret)
            return
        if kind == "structure":
            self.structure(value, shape, where, model_path, secret)
        elif kind == "list":
            self.size(value, shape, where, model_path, "items", secret)
            for i, item in enumerate(value):
                self.value(item, shape.member, f"{where}[{i}]", f"{model_path}[]", secret)
        elif kind == "map":
            self.size(value, shape, where, model_path, "entries", secret)
            for key, item in value.items():
                at = f"{where}[{key!r}]"
                self.value(key, shape.key, at, f"{model_path}{{key}}", secret)
                if item is not None:
                    self.value(item, shape.value, at, f"{model_path}{{value}}", secret)
        elif kind == "string":
            self.string(value, shape, where, model_path, secret)
        elif kind in ("integer", "long", "float", "double"):
            self.number(value, shape, where, model_path, secret)
        elif kind == "blob":
            self.size(value, shape, where, model_path, "bytes", secret)

    def structure(self, value: dict, shape, where: str, model_path: str, secret: bool) -> None:
        def join(base: str, name: str) -> str:
            return f"{base}.{name}" if base else name

        for name in shape.required_members:
            member = shape.members[name]
            # A host label travels in the host name, which the emulator's endpoint replaces.
            if value.get(name) is None and not member.serialization.get("hostLabel"):
                self.model(join(where, name), join(model_path, name), _MISSING, "required", False)
        if shape.metadata.get("union"):
            set_members = [k for k, v in value.items() if v is not None]
            if len(set_members) != 1:
                rule = f"union: exactly one member ({len(set_members)} set)"
                self.model(where, model_path, sorted(set_members), rule, secret)
        for name, item in value.items():
            if item is None or name not in shape.members:
                continue
            hidden = secret or bool(_SECRET_NAME.search(name))
            member = shape.members[name]
            self.value(item, member, join(where, name), join(model_path, name), hidden)

    def size(self, value: Any, shape, where: str, model_path: str, unit: str, secret) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        count = "" if secret else f" ({len(value)} {unit})"  # even a secret's length is a hint
        if low is not None and len(value) < low:
            self.model(where, model_path, value, f"min {low}{count}", secret)
        if high is not None and len(value) > high:
            self.model(where, model_path, value, f"max {high}{count}", secret)

    def string(self, value: str, shape, where: str, model_path: str, secret: bool) -> None:
        self.size(value, shape, where, model_path, "characters", secret)
        if shape.enum and value not in shape.enum:
            allowed = ", ".join(shape.enum)
            allowed = allowed if len(allowed) <= 200 else allowed[:199] + "…"
            self.model(where, model_path, value, f"enum {allowed}", secret)
        pattern = shape.metadata.get("pattern")
        if pattern and not _matches(pattern, value):
            self.model(where, model_path, value, f"pattern {pattern}", secret)

    def number(self, value, shape, where: str, model_path: str, secret: bool) -> None:
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and value < low:
            self.model(where, model_path, value, f"min {low}", secret)
        if high is not None and value > high:
            self.model(where, model_path, value, f"max {high}", secret)

    def rules(self, params: dict[str, Any], shape) -> None:
        for path, rules in aws_rules.rules_for_api(self.service, self.operation).items():
            secret = _secret_along(shape, path)
            for where, value in aws_rules.values_at(params, path):
                for rule in rules:
                    reason = rule.violation(value)
                    if reason is None:
                        continue
                    # The rule appends its id, summary and source, which get fields of their own.
                    reason = reason.removesuffix(f" ({rule.id}: {rule.summary}; {rule.source})")
                    if secret:  # the pattern's hint lists the value's refused characters
                        reason = re.sub(r" \(refused: .*\)$", "", reason)
                    text = f"{rule.id} ({rule.summary}): {reason}"
                    self.add(where, value, text, rule.source, secret)


def _matches(pattern: str, value: str) -> bool:
    try:
        return aws_rules.full_match(pattern, value)
    except Exception:  # a model pattern the regex engine cannot compile checks nothing
        return True


def _secret_along(shape, path: str) -> bool:
    """Whether any shape or member name on `path` (`a.b[].c`) marks the value as secret."""
    for step in path.split("."):
        if shape is None or shape.type_name != "structure":
            return False
        name = step.removesuffix("[]")
        if _SECRET_NAME.search(name) or shape.metadata.get("sensitive"):
            return True
        shape = shape.members.get(name)
        if shape is not None and step.endswith("[]"):
            if shape.metadata.get("sensitive"):
                return True
            shape = shape.member
    return bool(shape is not None and shape.metadata.get("sensitive"))


# --- the middleware -------------------------------------------------------------------------


@dataclass(frozen=True)
class Unparsed:
    request: str
    reason: str

    def __str__(self) -> str:
        return f"{self.request}: {self.reason}"


class Checked:
    """WSGI middleware: checks each AWS API request and refuses those AWS would refuse.

    `violations` lists every violation found, `checked` counts the requests checked by
    `(service, operation)`, and `unparsed` lists the requests that could not be read as an
    operation call (they go on to the wrapped app, but are never counted as checked).
    """

    def __init__(self, app: Callable) -> None:
        self.app = app
        self.violations: list[Violation] = []
        self.checked: Counter[tuple[str, str]] = Counter()
        self.unparsed: list[Unparsed] = []
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        body = _read_body(environ)
        path, _, query = _raw_target(environ)
        method = environ["REQUEST_METHOD"]
        # A bug here must show up as an unparsed request, not as a failure of moto's.
        try:
            call = parse(method, path, query, _headers(environ), body)
            found = check(call) if call is not None and call.parsed else []
        except Exception as exc:
            call, found = Call(None, None, {}, None, f"{method} {path}", f"failed: {exc!r}"), []
        if call is None:
            return self.app(environ, start_response)
        if not call.parsed:
            with self._lock:
                self.unparsed.append(Unparsed(call.request, call.unparsed or ""))
            return self.app(environ, start_response)
        with self._lock:
            self.checked[(call.service, call.operation)] += 1
            self.violations.extend(found)
        if found:
            return _refuse(call, found, start_response)
        return self.app(environ, start_response)

    def clear(self) -> None:
        with self._lock:
            self.violations.clear()
            self.checked.clear()
            self.unparsed.clear()


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the whole body and put it back for the wrapped app."""
    stream = environ.get("wsgi.input")
    length = environ.get("CONTENT_LENGTH") or ""
    if stream is None:
        return b""
    if length.isdigit():
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):  # chunked transfer, already de-chunked
        body = stream.read()
        environ["CONTENT_LENGTH"] = str(len(body))
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _raw_target(environ: dict[str, Any]) -> tuple[str, str, str]:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        # WSGI carries the request line as latin-1 text of its bytes.
        raw = raw.encode("latin-1").decode("utf-8", "replace")
        raw = re.sub(r"^[a-z]+://[^/]*", "", raw)  # an absolute-form target
        return raw.partition("?")
    path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace")
    return quote(path, safe="/~"), "?", environ.get("QUERY_STRING", "")


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_") and isinstance(value, str)
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = environ[key]
    return headers


def _error_code(protocol: str | None) -> str:
    return "InvalidParameterValue" if protocol == EC2 else "ValidationError"


def _error_message(found: list[Violation], most: int = 10) -> str:
    """The violations in one line; a long list ends with how many more there are."""
    message = "; ".join(str(v) for v in found[:most])
    return message + (f"; and {len(found) - most} more" if len(found) > most else "")


def _refuse(call: Call, found: list[Violation], start_response: Callable) -> list[bytes]:
    """HTTP 400 in the error format of the request's protocol, which the SDKs read."""
    code, message = _error_code(call.protocol), _error_message(found)
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", request_id)]
    if call.protocol in (JSON, REST_JSON):
        body = json.dumps({"__type": code, "message": message}).encode()
        headers += [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-ErrorType", code),
            # Query-compatible JSON services (SQS, CloudWatch) read the code from here.
            ("x-amzn-query-error", f"{code};Sender"),
        ]
    elif call.protocol == CBOR:
        body = _cbor_map({"__type": code, "message": message})
        headers += [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
        headers += [("x-amzn-query-error", f"{code};Sender")]
    else:
        body = _xml_error(call, code, message, request_id).encode()
        headers += [("Content-Type", "text/xml")]
    headers.append(("Content-Length", str(len(body))))
    start_response("400 Bad Request", headers)
    return [body]


def _xml_error(call: Call, code: str, message: str, request_id: str) -> str:
    error = f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
    if call.protocol == EC2:
        return (
            f"<Response><Errors><Error>{error}</Error></Errors>"
            f"<RequestID>{request_id}</RequestID></Response>"
        )
    if call.service == "s3":  # S3's errors are not wrapped
        return f"<Error>{error}<RequestId>{request_id}</RequestId></Error>"
    return (
        f"<ErrorResponse><Error><Type>Sender</Type>{error}</Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )


def _cbor_map(fields: dict[str, str]) -> bytes:
    """A CBOR map of text strings (all an error body needs)."""

    def head(major: int, length: int) -> bytes:
        if length < 24:
            return bytes([major << 5 | length])
        size = next(n for n in (1, 2, 4, 8) if length < 1 << (8 * n))
        info = {1: 24, 2: 25, 4: 26, 8: 27}[size]
        return bytes([major << 5 | info]) + length.to_bytes(size, "big")

    def text(value: str) -> bytes:
        encoded = value.encode()
        return head(3, len(encoded)) + encoded

    return head(5, len(fields)) + b"".join(text(k) + text(v) for k, v in fields.items())
