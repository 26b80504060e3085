"""Agent runs as streams: a model plus tools, every step streamed.

``Agent(model=..., tools=[...], instructions=..., output_type=...)``; ``agent.stream(prompt)``
is a :class:`AgentStream` of the whole run's events::

    RunStart
      StepStart(0)  deltas...  tool-call start/delta/end...  UsageEvent  StepEnd(0)
      ToolProgress...  ToolResult | ToolError  (one per call, as each finishes)
      StepStart(1)  deltas...  StepEnd(1)
      [ObjectDelta... PartialObject... FinalOutput]   (with an output_type)
    RunEnd(status, finish_reason, usage=total)

Every event carries the agent's ``run_id`` and ``agent`` name and a ``seq`` monotonic over the
whole run. The calls of one step run concurrently (sync tools in worker threads), each result
keyed by its ``call_id`` (made up, unique in the run, for a call the model gave no id).
``await agent.run(prompt)`` builds a :class:`RunResult` from the same stream;
``agent.stream_sync(prompt)`` iterates it from synchronous code.

Cancellation, three ways, one terminal event (``RunEnd(status="cancelled")`` with the usage
so far; ``stream.result_message`` is the partial output):

An exception from the model stream (a connection error, malformed wire data) ends the run
like a provider error: an ``ErrorEvent`` (``error_type`` = the exception's class name) and
``RunEnd(status="failed")``, after everything received before it.

- **stop consuming** (``break``, closing the stream, a client that went away): the model
  request and the running tools are cancelled and closed; the run end goes to the hooks and to
  ``stream.result_end`` (the consumer left, so it cannot receive it);
- **cancel now**: ``stream.cancel()``: the model request and the tools are cancelled at once;
  the stream ends with the run end;
- **cancel after the step**: ``stream.cancel_after_step()``: the current model call and its
  tools finish, then the stream ends with the run end.

The run is a pipeline of operators (``streamops/agent/_run.py`` draws it): the step loop's
events (each step ``model.stream(...)`` then :func:`run_tools`), ``errors_as_events()``,
``structured(output_type)``, then the hooks operator, which also numbers the run's events
(``restamp`` fused in). :func:`run_tools` is reusable on any
model stream: ``model.stream(messages, tools=specs) | run_tools(tools)``.

Where the tool calls run: under a terminal that hosts tasks (``iterate()``, ``collect()``,
``run()``, ``to_list()``...) they are tasks of its task group, and their ``ToolProgress``/
``ToolResult``/``ToolError`` events reach the consumer live, as each call reports them. A bare
``async for event in agent.stream(prompt)`` works too (asyncio and trio): the calls of a step
still run concurrently, in a task group the run opens and closes within the step, but their
events arrive together once the step's last call has finished (no live progress), and a
``break`` cannot interrupt a step's tools (it takes effect at the next event). Use
``iterate()`` for live tool progress.
"""

from __future__ import annotations

from ._agent import Agent, AgentStream
from ._hooks import Hooks
from ._result import RunResult
from ._tools import run_tools

__all__ = ["Agent", "AgentStream", "Hooks", "RunResult", "run_tools"]
