"""Issue 13 item 4: a JSON-RPC ``id`` that is a list, an object, a bool or 1e999 (or a body
nested too deep) gets the JSON-RPC error "invalid request" (or "parse error") with ``id: null``,
never HTTP 500; a real uvicorn server on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest

from streamops.agent import Agent
from tests.serve.test_a2a import SlowModel, make_app, serve

pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]


async def test_invalid_ids_and_hostile_bodies_get_json_rpc_errors_with_id_null() -> None:
    app = make_app(lambda: Agent(SlowModel()))
    bodies = [
        (b'{"jsonrpc":"2.0","id":[1],"method":"tasks/get","params":{"id":"x"}}', -32600),
        (b'{"jsonrpc":"2.0","id":{"a":1},"method":"tasks/get","params":{"id":"x"}}', -32600),
        (b'{"jsonrpc":"2.0","id":1e999,"method":"tasks/get","params":{"id":"x"}}', -32600),
        (b'{"jsonrpc":"2.0","id":true,"method":"tasks/get","params":{"id":"x"}}', -32600),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"tasks/get","params":{"id":"x"}}', -32600),
        (b'{"jsonrpc":"2.0","id":' + b"[" * 5000 + b"]" * 5000 + b',"method":"x"}', -32700),
        (b'{"jsonrpc":"2.0","id":' + b"9" * 5000 + b',"method":"x"}', -32700),
        (b'{"jsonrpc":"2.0","id":"\\ud83d","method":"x/y"}', -32601),
    ]
    async with serve(app) as base, httpx.AsyncClient(timeout=30) as http:
        for body, code in bodies:
            r = await http.post(base + "/a2a", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 200, (body[:60], r.status_code, r.text[:200])
            data = r.json()
            assert data["error"]["code"] == code, (body[:60], data)
            if code != -32601:
                assert data["id"] is None, (body[:60], data)
