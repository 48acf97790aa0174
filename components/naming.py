"""Physical names of resources that AWS identifies by name.

Names carry the Pulumi project as well as the stack: two projects that both have a stack
called `dev` in one account and region would otherwise fight over one ECS cluster, log
group or Cloud Map namespace.
"""

from __future__ import annotations

import pulumi


def physical_name(*parts: str) -> str:
    """`<project>-<stack>[-part...]`, e.g. `ecs-tls-dev-alb-envoy`."""
    return "-".join([pulumi.get_project(), pulumi.get_stack(), *parts])
