"""Provider adapters: wire data (SDK stream objects or raw SSE bytes) -> streamops events.

Installed as the subpackage ``streamops.adapters``.
"""

__all__: list[str] = []
