"""Sinks: where event streams go out (SSE, NDJSON, WebSocket, protocol re-serializations)."""

__all__: list[str] = []
