"""No request or response content is stored or logged, whatever happens to the request."""

from __future__ import annotations

import logging
import socket
import uuid
from typing import Any

import httpx
import orjson
import pytest
from django.db import connection

from logs.models import RequestLog
from tests.relay.conftest import Customer, wait_for


def _database_text() -> str:
    chunks: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - our own table names
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


def test_it_never_stores_or_logs_prompt_or_completion_content(
    ready: Customer, fake, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = f"CANARY-{uuid.uuid4().hex}"
    fake.configure(echo=True)  # completions carry the canary back too
    client = ready.openai()
    chat = [{"role": "user", "content": f"remember {canary}"}]

    reply = client.chat.completions.create(model="gpt-4o-mini", messages=chat)
    assert canary in (reply.choices[0].message.content or "")
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(model="gpt-4o-mini", messages=chat, stream=True)
        if c.choices
    )
    assert canary in streamed
    client.completions.create(model="gpt-3.5-turbo-instruct", prompt=canary)
    client.embeddings.create(model="text-embedding-3-small", input=canary)
    # Translated protocols too: Anthropic, Responses and Gemini callers on the same channel.
    translated: list[tuple[str, dict[str, Any]]] = [
        ("/v1/messages", {"model": "gpt-4o-mini", "max_tokens": 50, "messages": chat}),
        ("/v1/messages", {"model": "gpt-4o-mini", "max_tokens": 50, "messages": chat,
                          "stream": True}),
        ("/v1/responses", {"model": "gpt-4o-mini", "input": canary}),
        ("/v1/responses", {"model": "gpt-4o-mini", "input": canary, "stream": True}),
        ("/v1beta/models/gpt-4o-mini:generateContent",
         {"contents": [{"role": "user", "parts": [{"text": canary}]}]}),
        ("/v1beta/models/gpt-4o-mini:streamGenerateContent?alt=sse",
         {"contents": [{"role": "user", "parts": [{"text": canary}]}]}),
    ]  # fmt: skip
    for path, payload in translated:
        answer = httpx.post(
            ready.relay.url + path,
            json=payload,
            headers={"x-api-key": ready.secret, "x-goog-api-key": ready.secret},
        )
        assert answer.status_code == 200, path
        if "stream" not in path and not payload.get("stream"):
            assert canary in answer.text, path  # (streams split it across events)

    # Failures: malformed JSON around the canary, an upstream error quoting it, a stream cut
    # mid-way, a client that hangs up.
    headers = {"authorization": f"Bearer {ready.secret}", "content-type": "application/json"}
    bad = httpx.post(ready.base_url + "/chat/completions", content=canary, headers=headers)
    assert bad.status_code == 400 and canary not in bad.text
    fake.fail(400, message=f"upstream refused {canary}", times=1)
    passed = httpx.post(
        ready.base_url + "/chat/completions",
        json={"model": "gpt-4o-mini", "messages": chat},
        headers=headers,
    )
    assert passed.status_code == 400
    fake.fail(mode="midstream", after_chunks=1, times=1)
    with httpx.stream(
        "POST",
        ready.base_url + "/chat/completions",
        json={"model": "gpt-4o-mini", "messages": chat, "stream": True},
        headers=headers,
    ) as response:
        response.read()
    fake.configure(stream_chunks=30, chunk_delay=0.05)
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": chat, "stream": True})
    with socket.create_connection(("127.0.0.1", ready.relay.port)) as sock:
        head = f"Authorization: Bearer {ready.secret}\r\nContent-Length: {len(body)}\r\n\r\n"
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n" + head.encode() + body)
        got = b""
        while b"data:" not in got:
            got += sock.recv(65536)

    wait_for(lambda: RequestLog.objects.count() == 14, timeout=10)
    assert canary not in _database_text()
    for record in caplog.records:
        assert canary not in record.getMessage()
        assert canary not in str(record.args)
    out, err = capfd.readouterr()
    assert canary not in out and canary not in err
