"""Serving: the OpenAI-compatible server, the run registry and its logs, the A2A routes, the page.

- :mod:`streamops.serve.app`: :func:`~streamops.serve.app.create_app` (what ``streamops serve``
  runs) and its request model :class:`~streamops.serve.app.ChatCompletionRequest`.
- :mod:`streamops.serve.runlog`: :class:`~streamops.serve.runlog.RunRegistry`,
  :class:`~streamops.serve.runlog.RunHandle`, :class:`~streamops.serve.runlog.RunLog` (runs kept
  in memory so a client can resume; they implement :class:`streamops.sinks.resume.ResumableRun`).
- :mod:`streamops.serve.a2a`: :func:`~streamops.serve.a2a.a2a_routes`.
- :func:`head_timeout_protocol`: uvicorn's HTTP protocol with a request-head timeout (what
  ``streamops serve --head-timeout`` runs); :class:`RunLimit`: one limit on the runs going at
  once, shared by the routes that start runs.
- :mod:`streamops.serve.dispatch`: :class:`~streamops.serve.dispatch.RequestQueue` (run requests
  in a Redis consumer group) and the server's side of ``serve --dispatch``.
- :mod:`streamops.serve.worker`: :class:`~streamops.serve.worker.Worker` (``streamops worker``:
  takes requests from the queue, runs the agent, publishes into the run store).
- ``static/index.html``: the page served at ``/``.

The protocol encoders these build on are in :mod:`streamops.sinks`. Importing this package
imports no submodule (and so no starlette).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import LazyExports

if TYPE_CHECKING:
    from ._limits import RunLimit
    from ._uvicorn import head_timeout_protocol
    from .a2a import a2a_routes
    from .app import ChatCompletionRequest, create_app
    from .runlog import RunHandle, RunLimitError, RunLog, RunRegistry, UnknownRunError

_MODULES: dict[str, tuple[str, ...]] = {
    "_limits": ("RunLimit",),
    "_uvicorn": ("head_timeout_protocol",),
    "a2a": ("a2a_routes",),
    "app": ("ChatCompletionRequest", "create_app"),
    "runlog": ("RunHandle", "RunLimitError", "RunLog", "RunRegistry", "UnknownRunError"),
}
"""Which module defines each exported name."""

__all__ = [
    "ChatCompletionRequest",
    "RunHandle",
    "RunLimit",
    "RunLimitError",
    "RunLog",
    "RunRegistry",
    "UnknownRunError",
    "a2a_routes",
    "create_app",
    "head_timeout_protocol",
]


_EXPORTS = LazyExports(globals(), _MODULES)
__getattr__ = _EXPORTS.get  # PEP 562: a name is imported from its module on first access
__dir__ = _EXPORTS.names
