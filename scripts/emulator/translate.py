"""The program's resources as a Terraform configuration for the `hashicorp/aws` provider.

pulumi-aws is that provider, bridged: each pulumi-aws resource is one provider resource, its
inputs the provider's arguments under other spellings. The translation reads the program's
graph under the test mocks (scripts/mock_runtime.py) and the provider's own schema
(`terraform providers schema -json`), and derives from the schema:

- the resource type: `aws:<module>/<camelName>:<Class>` -> `aws_<module>_<snake_name>` or
  `aws_<snake_name>`, whichever the provider has;
- each argument: camelCase -> snake_case, and the bridge's plural of a repeated block back to
  the block's singular name (`defaultActions` -> `default_action`);
- block nesting: an object the bridge flattened from a one-element block becomes a list
  again where the schema says the argument is a block.

What the schema cannot say is listed below with its reason (`TYPE_RENAMES`,
`MODULE_RENAMES`, `ARGUMENT_RENAMES`). An input the translation cannot place is an error,
never dropped.

Values computed by other resources become references: the mocks give every resource
distinct computed outputs (IDs, ARNs, names it was auto-named with), so an input string that
contains one of those of a resource it depends on (Pulumi records which) is rewritten to
`${aws_type.name.attribute}`. pulumi-tls resources are not in the provider mirror: they are
generated here, with real keys and certificates, and their PEM replaces the mocks' stand-in
text wherever the program used it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from scripts.mock_runtime import Graph, Resource, unwrap
from scripts.pki import cert_pem, key_pem

# --- what the schema cannot say -----------------------------------------------------------

# pulumi-aws names a few resources differently from the provider.
TYPE_RENAMES = {
    # The bridge gives `aws_lb` its class name, LoadBalancer, inside module lb.
    "aws:lb/loadBalancer:LoadBalancer": "aws_lb",
}
# Pulumi modules whose name differs from the provider's prefix.
MODULE_RENAMES = {
    # The provider spells the service with an underscore (aws_service_discovery_*).
    "servicediscovery": "service_discovery",
}
# (pulumi type, pulumi input) -> provider argument, where the bridge renamed one.
ARGUMENT_RENAMES = {
    # The bridge names an alarm's `alarm_name` just `name`, like every other resource's.
    ("aws:cloudwatch/metricAlarm:MetricAlarm", "name"): "alarm_name",
    # The bridge names a function's `function_name` just `name`.
    ("aws:lambda/function:Function", "name"): "function_name",
    ("aws:lambda/permission:Permission", "function"): "function_name",
    # The bridge turns the provider's `filename` (a zip on disk) into an Archive, `code`.
    ("aws:lambda/function:Function", "code"): "filename",
}
# Inputs pulumi-aws 7 (provider 6.x) has and provider 5.x lacks: none of the program's so
# far. Any such input fails the translation (TranslateError) rather than being dropped.

# Resource types moto cannot create, with the reason. They are validated and planned with
# the rest; the apply leaves them out and what depends on them uses the mocks' outputs.
NOT_CREATED = {
    "aws:dlm/lifecyclePolicy:LifecyclePolicy": "moto has no Data Lifecycle Manager",
    "aws:lambda/invocation:Invocation": "moto runs Lambda invocations only in a container "
    "runtime (Docker), which these machines do not have",
}

TLS_TYPES = {
    "tls:index/privateKey:PrivateKey",
    "tls:index/selfSignedCert:SelfSignedCert",
    "tls:index/certRequest:CertRequest",
    "tls:index/locallySignedCert:LocallySignedCert",
}


class TranslateError(Exception):
    """An input the translation cannot place in the provider's schema."""


# --- names --------------------------------------------------------------------------------


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def singular(name: str) -> list[str]:
    """The block names the bridge may have pluralized into `name`."""
    out = []
    if name.endswith("ies"):
        out.append(name[:-3] + "y")
    if name.endswith("es"):
        out.append(name[:-2])
    if name.endswith("s"):
        out.append(name[:-1])
    return out


def address_name(r: Resource) -> str:
    """A Terraform resource name that is the same for one URN in every configuration."""
    readable = re.sub(r"[^A-Za-z0-9_-]", "_", r.name)
    if not re.match(r"[A-Za-z_]", readable):
        readable = "r_" + readable
    return f"{readable}_{hashlib.sha1(r.urn.encode()).hexdigest()[:6]}"


# --- the provider's schema ----------------------------------------------------------------


@dataclass
class ProviderSchema:
    resources: dict[str, dict]
    provider: dict

    @classmethod
    def load(cls, path: Path) -> ProviderSchema:
        data = json.loads(path.read_text())
        (provider,) = data["provider_schemas"].values()
        return cls(provider["resource_schemas"], provider["provider"])

    def tf_type(self, token: str) -> str:
        if token in TYPE_RENAMES:
            return TYPE_RENAMES[token]
        _, middle, cls = token.split(":")
        module = middle.split("/")[0]
        name = snake(cls[0].lower() + cls[1:])
        for prefix in (module, MODULE_RENAMES.get(module)):
            if prefix and f"aws_{prefix}_{name}" in self.resources:
                return f"aws_{prefix}_{name}"
        if f"aws_{name}" in self.resources:
            return f"aws_{name}"
        raise TranslateError(f"{token}: no resource type of the provider matches")

    def block(self, tf_type: str) -> dict:
        return self.resources[tf_type]["block"]

    def endpoint_services(self) -> list[str]:
        return sorted(self.provider["block"]["block_types"]["endpoints"]["block"]["attributes"])


# --- values -------------------------------------------------------------------------------


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _find(key: str, block: dict, token: str, where: str) -> tuple[str, str, dict]:
    """(provider name, 'attribute' or 'block', its schema) of pulumi input `key`."""
    renamed = ARGUMENT_RENAMES.get((token, where)) if "." not in where else None
    candidates = [renamed] if renamed else [snake(key), *singular(snake(key))]
    for name in candidates:
        if name in block.get("attributes", {}):
            return name, "attribute", block["attributes"][name]
        if name in block.get("block_types", {}):
            return name, "block", block["block_types"][name]
    raise TranslateError(
        f"{token} input {where!r}: the provider schema has no argument "
        f"{' or '.join(repr(c) for c in candidates)}"
    )


def convert_block(value: dict, block: dict, token: str, where: str = "") -> dict:
    out = {}
    for key, item in value.items():
        if item is None:
            continue
        path = f"{where}.{key}" if where else key
        name, kind, schema = _find(key, block, token, path)
        if kind == "attribute":
            if schema.get("computed") and not (schema.get("optional") or schema.get("required")):
                raise TranslateError(f"{token} input {path!r}: an output only, in this provider")
            if "nested_type" in schema:
                out[name] = _convert_nested(item, schema["nested_type"], token, path)
            else:
                out[name] = convert_value(item, schema["type"], token, path)
        else:
            nested = schema["block"]
            if schema["nesting_mode"] in ("single", "group"):
                out[name] = convert_block(item, nested, token, path)
            else:
                items = item if isinstance(item, list) else [item]
                out[name] = [convert_block(i, nested, token, path) for i in items]
    return out


def _convert_nested(value: Any, nested: dict, token: str, where: str) -> Any:
    block = {"attributes": nested["attributes"]}
    if nested["nesting_mode"] == "single":
        return convert_block(value, block, token, where)
    if nested["nesting_mode"] == "map":
        return {k: convert_block(v, block, token, where) for k, v in value.items()}
    items = value if isinstance(value, list) else [value]
    return [convert_block(i, block, token, where) for i in items]


def convert_value(value: Any, type_: Any, token: str, where: str) -> Any:
    """A pulumi value as the provider's cty type wants it (map keys are data: kept)."""
    if isinstance(type_, list):
        kind, inner = type_
        if kind in ("list", "set"):
            items = value if isinstance(value, list) else [value]
            return [convert_value(i, inner, token, where) for i in items]
        if kind == "map":
            return {k: convert_value(v, inner, token, where) for k, v in value.items()}
        if kind == "object":
            # An object-typed attribute needs every attribute, null where not set.
            out = dict.fromkeys(inner)
            for key, item in value.items():
                name = snake(key)
                if name not in inner:
                    raise TranslateError(f"{token} input {where}.{key}: not in {sorted(inner)}")
                out[name] = convert_value(item, inner[name], token, f"{where}.{key}")
            return out
    if type_ == "number":
        return _number(value)
    if type_ == "string" and isinstance(value, (bool, int, float)):
        return json.dumps(_number(value)) if not isinstance(value, bool) else str(value).lower()
    return value


def escape(text: str) -> str:
    """A literal string in Terraform's template syntax."""
    return text.replace("${", "$${").replace("%{", "%%{")


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)


def rewrite(value: Any, replace) -> Any:
    if isinstance(value, str):
        return replace(value)
    if isinstance(value, dict):
        return {k: rewrite(v, replace) for k, v in value.items()}
    if isinstance(value, list):
        return [rewrite(v, replace) for v in value]
    return value


# --- pulumi-tls, for real -----------------------------------------------------------------


@dataclass
class TlsMaterial:
    """Keys and certificates made for the pulumi-tls resources, kept for a whole run so a
    switch of topology sees the same PEM for the same resource."""

    by_urn: dict[str, dict[str, str]] = field(default_factory=dict)

    def realize(self, graph: Graph) -> dict[str, str]:
        """{mock PEM text: real PEM text} for every pulumi-tls resource of `graph`."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        real: dict[str, str] = {}
        keys: dict[str, Any] = {}
        certs: dict[str, Any] = {}
        csrs: dict[str, Any] = {}
        now = datetime.now(UTC).replace(microsecond=0)

        def name_of(subject: dict) -> x509.Name:
            attrs = []
            if subject.get("commonName"):
                attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, subject["commonName"]))
            if subject.get("organization"):
                attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, subject["organization"]))
            return x509.Name(attrs)

        def sign(subject, public_key, issuer, issuer_key, inputs: dict) -> x509.Certificate:
            hours = _number(inputs.get("validityPeriodHours", 24))
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(issuer)
                .public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(minutes=5))
                .not_valid_after(now + timedelta(hours=hours))
                .add_extension(
                    x509.BasicConstraints(ca=bool(inputs.get("isCaCertificate")), path_length=None),
                    critical=True,
                )
            )
            names = inputs.get("dnsNames") or []
            if names:
                builder = builder.add_extension(
                    x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
                )
            return builder.sign(issuer_key, hashes.SHA256())

        tls = [r for r in graph if r.type in TLS_TYPES]
        order = {
            "tls:index/privateKey:PrivateKey": 0,
            "tls:index/selfSignedCert:SelfSignedCert": 1,
            "tls:index/certRequest:CertRequest": 2,
            "tls:index/locallySignedCert:LocallySignedCert": 3,
        }
        for r in sorted(tls, key=lambda r: order[r.type]):
            inputs = unwrap(r.inputs)
            made = self.by_urn.get(r.urn)
            if r.type == "tls:index/privateKey:PrivateKey":
                if made is None:
                    key = ec.generate_private_key(ec.SECP256R1())
                    made = {
                        "privateKeyPem": key.private_bytes(
                            serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption(),
                        ).decode(),
                        "privateKeyPemPkcs8": key_pem(key),
                        "publicKeyPem": key.public_key()
                        .public_bytes(
                            serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo,
                        )
                        .decode(),
                    }
                key = serialization.load_pem_private_key(made["privateKeyPem"].encode(), None)
                for text in ("privateKeyPem", "privateKeyPemPkcs8"):
                    keys[r.outputs[text]] = key
            elif r.type == "tls:index/selfSignedCert:SelfSignedCert":
                key = keys[inputs["privateKeyPem"]]
                if made is None:
                    subject = name_of(inputs.get("subject") or {})
                    made = {
                        "certPem": cert_pem(sign(subject, key.public_key(), subject, key, inputs))
                    }
                certs[r.outputs["certPem"]] = x509.load_pem_x509_certificate(
                    made["certPem"].encode()
                )
            elif r.type == "tls:index/certRequest:CertRequest":
                key = keys[inputs["privateKeyPem"]]
                csrs[r.outputs["certRequestPem"]] = (key.public_key(), inputs)
                made = made or {"certRequestPem": r.outputs["certRequestPem"]}
            else:
                public_key, request = csrs[inputs["certRequestPem"]]
                ca = certs[inputs["caCertPem"]]
                ca_key = keys[inputs["caPrivateKeyPem"]]
                if made is None:
                    subject = name_of(request.get("subject") or {})
                    merged = {**inputs, "dnsNames": request.get("dnsNames")}
                    made = {
                        "certPem": cert_pem(sign(subject, public_key, ca.subject, ca_key, merged))
                    }
            self.by_urn[r.urn] = made
            for key_, text in made.items():
                mock = r.outputs.get(key_)
                if mock and mock != text:
                    real[mock] = text
        return real


# --- the configuration ------------------------------------------------------------------


@dataclass
class Translation:
    config: dict  # Terraform JSON, everything the program declares
    apply_config: dict  # the same without NOT_CREATED types
    addresses: dict[str, Resource]  # "aws_type.name" -> the resource
    not_created: dict[str, str]  # address -> reason
    unresolved: list[str]  # inputs that still hold a mock value (a lost reference)
    archives: dict[str, bytes]  # file name -> zip, for Lambda code


def _custom_descendants(graph: Graph, urn: str) -> list[Resource]:
    try:
        r = graph.by_urn(urn)
    except KeyError:
        return []
    if r.custom:
        return [r]
    return [c for c in graph.descendants(r) if c.custom]


# Outputs that echo an input and are there to be referred to: what refers to a certificate
# validation's ARN waits for the issuance, a scaling policy names its registered target.
PASSED_ON = {
    ("aws:acm/certificateValidation:CertificateValidation", "certificateArn"),
    ("aws:appautoscaling/target:Target", "resourceId"),
}


def _computed_outputs(r: Resource, tf_type: str, schema: ProviderSchema) -> dict[str, str]:
    """{mock value: provider attribute} of what the mocks computed for `r`."""
    attributes = schema.block(tf_type)["attributes"]
    out: dict[str, str] = {}
    if isinstance(r.id, str) and r.id:
        out[r.id] = "id"
    echoed = set(strings(unwrap(r.inputs)))
    for key, value in r.outputs.items():
        passed_on = (r.type, key) in PASSED_ON
        if not isinstance(value, str) or len(value) < 6 or (value in echoed and not passed_on):
            continue
        name = ARGUMENT_RENAMES.get((r.type, key), snake(key))
        if name in attributes and attributes[name].get("type") == "string":
            out.setdefault(value, name)
    out.update(_nested_computed_outputs(r, attributes, echoed))
    return out


def _nested_computed_outputs(
    r: Resource, attributes: dict[str, Any], echoed: set[str]
) -> dict[str, str]:
    """{mock value: expression} for strings inside computed lists of objects, such as an
    ACM certificate's `domain_validation_options[0].resource_record_name`. A set has no
    order to index by, so only a set of one element is referred to."""
    out: dict[str, str] = {}
    for key, value in r.outputs.items():
        name = ARGUMENT_RENAMES.get((r.type, key), snake(key))
        kind = attributes.get(name, {}).get("type")
        if not (isinstance(value, list) and isinstance(kind, list) and len(kind) == 2):
            continue
        collection, element = kind
        if collection not in ("list", "set") or not isinstance(element, list):
            continue
        if element[0] != "object" or (collection == "set" and len(value) != 1):
            continue
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            for field_name, text in item.items():
                if isinstance(text, str) and len(text) >= 6 and text not in echoed:
                    expression = f"tolist({{address}}.{name})[{index}].{snake(field_name)}"
                    out.setdefault(text, expression)
    return out


def _archive(value: Any) -> bytes:
    """A zip of a pulumi AssetArchive of file and string assets."""
    import io

    import pulumi

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, asset in sorted(value.assets.items()):
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            if isinstance(asset, pulumi.FileAsset):
                zf.writestr(info, Path(asset.path).read_bytes())
            elif isinstance(asset, pulumi.StringAsset):
                zf.writestr(info, asset.text)
            else:
                raise TranslateError(f"archive member {name}: {type(asset).__name__}")
    return buffer.getvalue()


def translate(
    graph: Graph,
    schema: ProviderSchema,
    endpoint: str,
    region: str,
    tls: TlsMaterial,
    auto_names: dict[tuple[str, str], str] | None = None,
) -> Translation:
    """`auto_names`: (URN, input) -> the auto-name to use instead of the mocks' (a resource
    created again after a switch gets a new random suffix from Pulumi)."""
    import pulumi

    customs = [r for r in graph if r.custom and r.type not in TLS_TYPES]
    types = {r.urn: schema.tf_type(r.type) for r in customs}
    addresses = {r.urn: f"{types[r.urn]}.{address_name(r)}" for r in customs}
    real_pem = tls.realize(graph)
    pem_pairs = sorted(real_pem.items(), key=lambda kv: -len(kv[0]))
    # JSON inside strings (secrets, container definitions) carries PEM with escaped newlines.
    pem_pairs += [(json.dumps(m)[1:-1], json.dumps(t)[1:-1]) for m, t in pem_pairs]
    mock_values = {r.urn: _computed_outputs(r, types[r.urn], schema) for r in customs}

    resources: dict[str, dict[str, dict]] = {}
    apply_resources: dict[str, dict[str, dict]] = {}
    archives: dict[str, bytes] = {}
    unresolved: list[str] = []
    by_address: dict[str, Resource] = {}
    not_created: dict[str, str] = {}

    for r in customs:
        tf_type, address = types[r.urn], addresses[r.urn]
        by_address[address] = r
        inputs = unwrap(r.inputs)
        # Pulumi auto-names what the program leaves unnamed: the mocks' name is that name.
        attributes = schema.block(tf_type)["attributes"]
        for key in ("name", "bucket"):
            argument = attributes.get(ARGUMENT_RENAMES.get((r.type, key), key), {})
            settable = argument.get("optional") or argument.get("required")
            if key not in inputs and settable and key in r.outputs:
                inputs[key] = (auto_names or {}).get((r.urn, key), r.outputs[key])
        code = inputs.get("code")
        if isinstance(code, pulumi.AssetArchive):
            data = _archive(code)
            file_name = f"{address_name(r)}.zip"
            archives[file_name] = data
            inputs["code"] = file_name
            inputs["sourceCodeHash"] = base64.b64encode(hashlib.sha256(data).digest()).decode()

        dependencies = {
            d.urn
            for urn in {
                *r.dependencies,
                *(u for urns in r.property_dependencies.values() for u in urns),
                *(u for a in graph.ancestors(r) for u in a.dependencies),
            }
            for d in _custom_descendants(graph, urn)
            if d.urn != r.urn
        }
        references: list[tuple[str, str]] = []
        for urn in dependencies:
            if urn not in addresses:
                continue
            for mock, attribute in mock_values[urn].items():
                if "{address}" in attribute:
                    expression = attribute.format(address=addresses[urn])
                else:
                    expression = f"{addresses[urn]}.{attribute}"
                references.append((mock, f"${{{expression}}}"))
        references.sort(key=lambda kv: -len(kv[0]))

        def replace(text: str, references=references) -> str:
            for mock, real in pem_pairs:
                if mock in text:
                    text = text.replace(mock, real)
            text = escape(text)
            for mock, reference in references:
                if mock in text:
                    text = text.replace(mock, reference)
            return text

        body = convert_block(rewrite(inputs, replace), schema.block(tf_type), r.type)
        leftover = [
            f"{r.type} {r.name}: holds {mock!r} of {graph.by_urn(urn).name}"
            for urn, values in mock_values.items()
            if urn != r.urn
            for mock in values
            if any(mock in s for s in strings(body))
        ]
        unresolved += leftover
        depends = sorted(addresses[u] for u in dependencies if u in addresses)
        lifecycle: dict[str, Any] = {"create_before_destroy": not r.delete_before_replace}
        if r.ignore_changes:
            lifecycle["ignore_changes"] = [snake(p.split(".")[0]) for p in r.ignore_changes]
        body["lifecycle"] = [lifecycle]
        if depends:
            body["depends_on"] = depends
        name = address.split(".", 1)[1]
        resources.setdefault(tf_type, {})[name] = body
        if r.type in NOT_CREATED:
            not_created[address] = NOT_CREATED[r.type]
        else:
            apply_resources.setdefault(tf_type, {})[name] = dict(body)

    # The apply leaves out what moto cannot create; what depends on it keeps its stand-in.
    for bodies in apply_resources.values():
        for body in bodies.values():
            if "depends_on" in body:
                body["depends_on"] = [d for d in body["depends_on"] if d not in not_created]
                if not body["depends_on"]:
                    del body["depends_on"]

    def document(resource_blocks: dict) -> dict:
        return {
            "provider": {"aws": provider_block(schema, endpoint, region)},
            "resource": resource_blocks,
        }

    return Translation(
        config=document(resources),
        apply_config=document(apply_resources),
        addresses=by_address,
        not_created=not_created,
        unresolved=unresolved,
        archives=archives,
    )


def provider_block(schema: ProviderSchema, endpoint: str, region: str) -> dict:
    return {
        "region": region,
        "access_key": "testing",
        "secret_key": "testing",
        "skip_credentials_validation": True,
        "skip_metadata_api_check": True,
        "skip_region_validation": True,
        "s3_use_path_style": True,
        # Three attempts, the SDK's default: a loopback connection the Go client finds closed
        # mid-response is retried as it would be against AWS; moto's 4xx refusals never are.
        "max_retries": 3,
        "endpoints": [{service: endpoint for service in schema.endpoint_services()}],
    }
