"""Entry point of the ecs-tls component package (PulumiPlugin.yaml): hosts the components.

The language host runs this file with this directory first on sys.path; the project's
modules are one level up, and put first so that they win over anything here.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi.provider.experimental import component_provider_host

from package.hosted import COMPONENTS, PACKAGE
from topologies.base import hosted_by_package

if __name__ == "__main__":
    hosted_by_package(PACKAGE)
    component_provider_host(components=COMPONENTS, name=PACKAGE)
