"""A fake media provider: OpenAI Images and Videos (Sora), Ark Seedance tasks and Seedream
images, Gemini image output. A real aiohttp server on a loopback port, in its own thread.

Video tasks follow a scripted lifecycle: the submit and each status read return the
task's current state and then move it one step along `plan` (default queued →
in_progress → completed), so a poller sees every stage. Tests can also block status reads (to kill a
worker mid-poll), rate-limit them, or make a plan end in failure.

    with FakeMedia() as fake:
        fake.plan = ["queued", "failed"]
        ... point an `openai` channel at fake.url + "/v1", a `doubao` one at fake.ark_url ...
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import socket
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

# A 1x1 transparent PNG.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
PNG_B64 = base64.b64encode(PNG).decode()
GPT_IMAGE_OUTPUT_TOKENS = 1056  # medium quality, 1024x1024
_ARK_STATUS = {
    "queued": "queued",
    "in_progress": "running",
    "completed": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}


def video_bytes(upstream_id: str) -> bytes:
    """The fake's rendered file for a task: recognisable and big enough to stream."""
    return b"\x00\x00\x00\x18ftypmp42" + (upstream_id.encode() * 20_000)[:300_000]


@dataclass
class FakeTask:
    id: str
    kind: str  # sora or seedance
    model: str
    seconds: int
    size: str
    key: str
    plan: list[str]
    step: int = 0
    created_at: int = field(default_factory=lambda: int(time.time()))
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return self.plan[min(self.step, len(self.plan) - 1)]


@dataclass
class Seen:
    method: str
    path: str
    key: str | None
    json: Any = None
    form: dict[str, Any] = field(default_factory=dict)


class FakeMedia:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.reset()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- scripting ------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.tasks: dict[str, FakeTask] = {}
            self.seen: list[Seen] = []
            self.plan = ["queued", "in_progress", "completed"]
            self.actual_seconds: int | None = None  # report another duration when done
            self.seedance_tokens: int | None = 108_900
            self.status_open = threading.Event()
            self.status_open.set()
            self.status_waiting = threading.Event()
            self.rate_limited = 0  # next N status reads answer 429
            self.status_error: int | None = None  # every status read answers this
            self.fail_submit: int | None = None  # status code for submits
            self.gemini_tokens = (10, 1290)

    def block_status(self) -> None:
        """Hold every status read until unblock_status(); status_waiting says one arrived."""
        self.status_waiting.clear()
        self.status_open.clear()

    def unblock_status(self) -> None:
        self.status_open.set()

    def status_reads(self, upstream_id: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for s in self.seen
                if s.method == "GET"
                and ("/videos/" in s.path or "/tasks/" in s.path)
                and not s.path.endswith("/content")
                and (upstream_id is None or s.path.endswith("/" + upstream_id))
            )

    def only_task(self) -> FakeTask:
        with self._lock:
            (task,) = self.tasks.values()
            return task

    @property
    def ark_url(self) -> str:
        return self.url + "/api/v3"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self._startup(sock))
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-media", daemon=True)
        self._thread.start()
        ready.wait(10)
        self._loop = loop
        return self

    async def _startup(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.add_routes(
            [
                web.post("/v1/videos", self._sora_create),
                web.get("/v1/videos/{id}", self._sora_get),
                web.delete("/v1/videos/{id}", self._sora_delete),
                web.get("/v1/videos/{id}/content", self._sora_content),
                web.post("/api/v3/contents/generations/tasks", self._ark_create),
                web.get("/api/v3/contents/generations/tasks/{id}", self._ark_get),
                web.delete("/api/v3/contents/generations/tasks/{id}", self._ark_delete),
                web.get("/files/{id}.mp4", self._file),
                web.post("/v1/images/generations", self._images),
                web.post("/v1/images/edits", self._images),
                web.post("/api/v3/images/generations", self._seedream),
                web.post("/v1beta/models/{target}", self._gemini),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        self.status_open.set()
        runner = self._runner
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- helpers --------------------------------------------------------------------------

    @staticmethod
    def _key(request: web.Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:]
        return request.headers.get("x-goog-api-key")

    async def _read(self, request: web.Request) -> Seen:
        seen = Seen(request.method, request.path, self._key(request))
        if request.content_type == "multipart/form-data":
            form = await request.post()
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    seen.form.setdefault(name, []).append(
                        (value.filename, value.content_type, value.file.read())
                    )
                else:
                    seen.form[name] = value
        elif request.can_read_body:
            raw = await request.read()
            seen.json = orjson.loads(raw) if raw else None
        with self._lock:
            self.seen.append(seen)
        return seen

    async def _status_gate(self) -> web.Response | None:
        self.status_waiting.set()
        if not self.status_open.is_set():
            await asyncio.to_thread(self.status_open.wait)
        with self._lock:
            if self.status_error:
                return web.json_response(
                    {"error": {"message": "Internal error", "type": "server_error"}},
                    status=self.status_error,
                )
            if self.rate_limited > 0:
                self.rate_limited -= 1
                return web.json_response(
                    {"error": {"message": "Too many requests", "type": "rate_limit"}},
                    status=429,
                    headers={"retry-after": "30"},
                )
        return None

    def _task(self, request: web.Request, kind: str) -> FakeTask | None:
        with self._lock:
            task = self.tasks.get(request.match_info["id"])
        if task is None or task.kind != kind or task.key != self._key(request):
            return None
        return task

    def _advance(self, task: FakeTask) -> str:
        with self._lock:
            state = task.state
            task.step += 1
            return state

    def _new_task(self, kind: str, prefix: str, **fields: Any) -> FakeTask:
        with self._lock:
            task = FakeTask(
                id=f"{prefix}{next(self._ids):06d}", kind=kind, plan=list(self.plan), **fields
            )
            self.tasks[task.id] = task
            return task

    # -- Sora -----------------------------------------------------------------------------

    def _sora_object(self, task: FakeTask, state: str) -> dict[str, Any]:
        progress = {"queued": 0, "in_progress": 50, "completed": 100}.get(state, 0)
        seconds = task.seconds
        if state == "completed" and self.actual_seconds is not None:
            seconds = self.actual_seconds
        return {
            "id": task.id,
            "object": "video",
            "model": task.model,
            "status": state,
            "progress": progress,
            "created_at": task.created_at,
            "completed_at": int(time.time()) if state == "completed" else None,
            "expires_at": int(time.time()) + 3600 if state == "completed" else None,
            "size": task.size,
            "seconds": str(seconds),
            "quality": "standard",
            "remixed_from_video_id": None,
            "error": {"code": "moderation_blocked", "message": "The video was blocked."}
            if state == "failed"
            else None,
        }

    async def _sora_create(self, request: web.Request) -> web.Response:
        seen = await self._read(request)
        if self.fail_submit:
            return web.json_response(
                {"error": {"message": "Upstream refused.", "type": "server_error"}},
                status=self.fail_submit,
            )
        fields = seen.form or seen.json or {}
        task = self._new_task(
            "sora",
            "video_up",
            model=str(fields.get("model", "sora-2")),
            seconds=int(fields.get("seconds", 4)),
            size=str(fields.get("size", "720x1280")),
            key=seen.key or "",
        )
        return web.json_response(self._sora_object(task, self._advance(task)))

    async def _sora_get(self, request: web.Request) -> web.Response:
        await self._read(request)
        gate = await self._status_gate()
        if gate is not None:
            return gate
        task = self._task(request, "sora")
        if task is None:
            return web.json_response({"error": {"message": "Video not found"}}, status=404)
        return web.json_response(self._sora_object(task, self._advance(task)))

    async def _sora_delete(self, request: web.Request) -> web.Response:
        await self._read(request)
        task = self._task(request, "sora")
        if task is None:
            return web.json_response({"error": {"message": "Video not found"}}, status=404)
        return web.json_response({"id": task.id, "object": "video.deleted", "deleted": True})

    async def _sora_content(self, request: web.Request) -> web.StreamResponse:
        await self._read(request)
        task = self._task(request, "sora")
        if task is None or task.state != "completed":
            return web.json_response({"error": {"message": "Video not found"}}, status=404)
        return await self._stream(request, video_bytes(task.id))

    async def _stream(self, request: web.Request, data: bytes) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"content-type": "video/mp4", "content-length": str(len(data))}
        )
        await response.prepare(request)
        for start in range(0, len(data), 50_000):
            await response.write(data[start : start + 50_000])
        await response.write_eof()
        return response

    # -- Ark Seedance ---------------------------------------------------------------------

    def _ark_object(self, task: FakeTask, state: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": task.id,
            "model": task.model,
            "status": _ARK_STATUS.get(state, state),
            "created_at": task.created_at,
            "updated_at": int(time.time()),
            "duration": task.seconds,
            "ratio": task.body.get("ratio"),
            "resolution": task.body.get("resolution"),
            "framespersecond": 24,
        }
        if state == "completed":
            if self.actual_seconds is not None:
                body["duration"] = self.actual_seconds
            body["content"] = {"video_url": f"{self.url}/files/{task.id}.mp4?sig=fake"}
            if self.seedance_tokens is not None:
                body["usage"] = {
                    "completion_tokens": self.seedance_tokens,
                    "total_tokens": self.seedance_tokens,
                }
        if state == "failed":
            body["error"] = {"code": "OutputVideoSensitiveContentDetected", "message": "Blocked."}
        return body

    async def _ark_create(self, request: web.Request) -> web.Response:
        seen = await self._read(request)
        if self.fail_submit:
            return web.json_response(
                {"error": {"code": "ServerOverloaded", "message": "Busy."}},
                status=self.fail_submit,
            )
        body = seen.json or {}
        task = self._new_task(
            "seedance",
            "cgt-2026",
            model=str(body.get("model")),
            seconds=int(body.get("duration", 5)),
            size="",
            key=seen.key or "",
            body=body,
        )
        self._advance(task)
        return web.json_response({"id": task.id})

    async def _ark_get(self, request: web.Request) -> web.Response:
        await self._read(request)
        gate = await self._status_gate()
        if gate is not None:
            return gate
        task = self._task(request, "seedance")
        if task is None:
            return web.json_response(
                {"error": {"code": "ResourceNotFound", "message": "not found"}}, status=404
            )
        return web.json_response(self._ark_object(task, self._advance(task)))

    async def _ark_delete(self, request: web.Request) -> web.Response:
        await self._read(request)
        task = self._task(request, "seedance")
        if task is None:
            return web.json_response({"error": {"code": "ResourceNotFound"}}, status=404)
        with self._lock:
            task.plan, task.step = ["cancelled"], 0
        return web.json_response({})

    async def _file(self, request: web.Request) -> web.StreamResponse:
        with self._lock:
            task = self.tasks.get(request.match_info["id"])
            self.seen.append(Seen("GET", request.path, self._key(request)))
        if task is None or request.query.get("sig") != "fake":
            return web.Response(status=403, text="AccessDenied")
        return await self._stream(request, video_bytes(task.id))

    # -- images ---------------------------------------------------------------------------

    async def _images(self, request: web.Request) -> web.Response:
        seen = await self._read(request)
        if self.fail_submit:
            return web.json_response(
                {"error": {"message": "Upstream refused.", "type": "server_error"}},
                status=self.fail_submit,
            )
        fields = seen.form or seen.json or {}
        model = str(fields.get("model", "dall-e-2"))
        n = int(fields.get("n", 1))
        url_format = fields.get("response_format") == "url" and not model.startswith("gpt-image")
        item = {"url": f"{self.url}/files/image.png"} if url_format else {"b64_json": PNG_B64}
        body: dict[str, Any] = {"created": int(time.time()), "data": [dict(item) for _ in range(n)]}
        if model.startswith("gpt-image"):
            images_in = sum(len(v) for k, v in seen.form.items() if k.startswith("image"))
            body["usage"] = {
                "input_tokens": 50 + 300 * images_in,
                "input_tokens_details": {"text_tokens": 50, "image_tokens": 300 * images_in},
                "output_tokens": GPT_IMAGE_OUTPUT_TOKENS * n,
                "total_tokens": 50 + 300 * images_in + GPT_IMAGE_OUTPUT_TOKENS * n,
            }
        return web.json_response(body)

    async def _seedream(self, request: web.Request) -> web.Response:
        seen = await self._read(request)
        body = seen.json or {}
        item = (
            {"url": f"{self.url}/files/image.png"}
            if body.get("response_format", "url") == "url"
            else {"b64_json": PNG_B64}
        )
        return web.json_response(
            {
                "model": body.get("model"),
                "created": int(time.time()),
                "data": [item],
                "usage": {"generated_images": 1, "output_tokens": 16384, "total_tokens": 16384},
            }
        )

    async def _gemini(self, request: web.Request) -> web.Response:
        await self._read(request)
        prompt_tokens, image_tokens = self.gemini_tokens
        return web.json_response(
            {
                "candidates": [
                    {
                        "content": {
                            "role": "model",
                            "parts": [
                                {"text": "Here is your image."},
                                {"inlineData": {"mimeType": "image/png", "data": PNG_B64}},
                            ],
                        },
                        "finishReason": "STOP",
                    }
                ],
                "usageMetadata": {
                    "promptTokenCount": prompt_tokens,
                    "candidatesTokenCount": image_tokens,
                    "totalTokenCount": prompt_tokens + image_tokens,
                },
            }
        )
