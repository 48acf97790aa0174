"""The components the ecs-tls package hosts, and the schema the SDK infers from them.

    .venv/bin/python -m package.hosted --write    # regenerate package/schema.json
    .venv/bin/python -m package.hosted --check    # exit 1 when it drifted

The schema is what `pulumi package add` turns into an SDK; generating it here needs no CLI.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from pulumi.provider.experimental.component import ComponentProvider  # noqa: E402

from components.cluster import Cluster  # noqa: E402
from components.network import Network  # noqa: E402
from topologies.alb_envoy import AlbEnvoy  # noqa: E402
from topologies.appmesh_efs import AppmeshEfs  # noqa: E402
from topologies.direct_task import DirectTask  # noqa: E402
from topologies.nlb_certbot import NlbCertbot  # noqa: E402
from topologies.service_connect import ServiceConnect  # noqa: E402

PACKAGE = "ecs-tls"
# The foundation (a VPC, an ECS cluster) and the topologies that run in it.
COMPONENTS = [Network, Cluster, AlbEnvoy, NlbCertbot, ServiceConnect, AppmeshEfs, DirectTask]
SCHEMA_FILE = Path(__file__).resolve().parent / "schema.json"


def provider() -> ComponentProvider:
    """The provider `package/__main__.py` serves (which also gives the components the
    package's type tokens: components.tokens.hosted_by_package)."""
    return ComponentProvider(COMPONENTS, PACKAGE)


def schema() -> dict:
    return json.loads(provider().schema or "{}")


def schema_text() -> str:
    return json.dumps(schema(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="regenerate package/schema.json")
    group.add_argument("--check", action="store_true", help="exit 1 when schema.json drifted")
    args = parser.parse_args(argv)
    text = schema_text()
    if args.write:
        SCHEMA_FILE.write_text(text)
        return 0
    if not SCHEMA_FILE.exists() or SCHEMA_FILE.read_text() != text:
        print(
            f"error: {SCHEMA_FILE} drifted: run python -m package.hosted --write", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
