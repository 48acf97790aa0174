"""moto's server on a loopback port, every AWS API request checked before moto sees it.

`start()` serves moto's full application (the one `moto.server` and `ThreadedMotoServer`
serve) behind `aws_requests.Checked`, in a daemon thread of this process, and sets moto's
state transitions so that the provider's waiters do not wait: every model moto registers
with a delayed default (CloudFront distributions, DAX clusters, Batch jobs...) becomes
immediate. moto has no managed state for NAT gateways (available at once) or load balancers
(active at their first description), so nothing is needed for those.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from scripts.emulator.aws_requests import Checked

HOST = "127.0.0.1"
IMMEDIATE = {"progression": "immediate"}
# moto's ECS tasks move only towards STOPPED (RUNNING, DEACTIVATING, ... STOPPED): "immediate"
# would stop each task at its first read. They stay RUNNING, as in AWS, until stopped.
HELD = {"progression": "manual", "times": 1_000_000_000}
TRANSITIONS = {"ecs::task": HELD}


def delayed_models() -> dict[str, dict[str, Any]]:
    """The transition to set for each moto model whose state would otherwise lag."""
    from moto.moto_api import state_manager

    wanted = {m: TRANSITIONS.get(m, IMMEDIATE) for m in state_manager.get_registered_models()}
    return {m: t for m, t in wanted.items() if state_manager.get_transition(m) != t}


@dataclass
class Emulator:
    """A running emulator; `checked` is the middleware, with what it checked and refused."""

    url: str
    port: int
    checked: Checked
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _transitions: list[str] = field(default_factory=list, repr=False)

    def moto_api(self, path: str, payload: dict[str, Any] | None = None) -> bytes:
        """POST to moto's own API (`/moto-api/...`), directly rather than via any proxy."""
        data = json.dumps(payload).encode() if payload is not None else b""
        request = urllib.request.Request(f"{self.url}/moto-api/{path}", data=data, method="POST")
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(request, timeout=30) as response:
            return response.read()

    def set_transitions(self, transitions: dict[str, dict[str, Any]]) -> None:
        for model, transition in transitions.items():
            self.moto_api(
                "state-manager/set-transition", {"model_name": model, "transition": transition}
            )
            self._transitions.append(model)

    def reset(self) -> None:
        """Forget every resource moto holds (the transitions set stay)."""
        self.moto_api("reset")

    def stop(self) -> None:
        # The state manager is global to the process: leave it as moto's defaults had it.
        for model in self._transitions:
            self.moto_api("state-manager/unset-transition", {"model_name": model})
        self._transitions.clear()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _quiet_handler():
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    class Quiet(MotoRequestHandler):
        # A run sends thousands of requests; the checks report what matters about them.
        def log_request(self, *_args: Any) -> None:
            pass

    return Quiet


def start(port: int = 0) -> Emulator:
    """moto behind the request check on 127.0.0.1:`port` (0: any free port)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    checked = Checked(DomainDispatcherApplication(create_backend_app))
    server = make_server(HOST, port, checked, threaded=True, request_handler=_quiet_handler())
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="emulator", daemon=True
    )
    thread.start()
    bound = server.server_address[1]
    emulator = Emulator(f"http://{HOST}:{bound}", bound, checked, server, thread)
    try:
        emulator.set_transitions(delayed_models())
    except Exception:
        emulator.stop()
        raise
    return emulator
