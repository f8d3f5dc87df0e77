"""Doubao Seedance through Ark's content generation tasks API, from the OpenAI Videos shape.

POST {base}/contents/generations/tasks with `content` (text, optional first-frame image,
optional reference video), `ratio`, `resolution`, `duration`; GET .../tasks/{id} reports
queued / running / succeeded / failed / cancelled, `content.video_url` (a signed URL kept
by Ark for 24 hours) and `usage.completion_tokens`, which Ark bills.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from relay.catalog import ChannelInfo
from relay.media.upstream_calls import Target
from relay.media.video_clients.base import (
    UpstreamVideo,
    VideoAdapter,
    VideoRequest,
    as_int,
    error_of,
)

_STATES = {
    "queued": "queued",
    "running": "in_progress",
    "succeeded": "completed",
    "failed": "failed",
    "cancelled": "failed",
    "expired": "failed",
}
_RATIOS = {"16:9": 16 / 9, "4:3": 4 / 3, "1:1": 1.0, "3:4": 3 / 4, "9:16": 9 / 16, "21:9": 21 / 9}
# The largest frame Ark renders at each resolution (21:9 is the widest): the hold's bound.
MAX_PIXELS = {"480p": 1120 * 480, "720p": 1680 * 720, "1080p": 2520 * 1080}
FPS = 24
URL_LIFETIME = 24 * 3600


def resolution_and_ratio(req: VideoRequest) -> tuple[str, str]:
    width, height = req.dimensions
    shortest = min(width, height)
    resolution = "480p" if shortest <= 480 else "720p" if shortest <= 720 else "1080p"
    ratio = min(_RATIOS, key=lambda name: abs(_RATIOS[name] - width / height))
    wanted = req.extra.get("resolution")
    if isinstance(wanted, str) and wanted in MAX_PIXELS:
        resolution = wanted
    wanted_ratio = req.extra.get("ratio")
    if isinstance(wanted_ratio, str) and (wanted_ratio in _RATIOS or wanted_ratio == "adaptive"):
        ratio = wanted_ratio
    return resolution, ratio


def max_tokens(req: VideoRequest) -> int:
    """Ark's token count is width x height x fps x seconds / 1024: bounded from above."""
    resolution, _ = resolution_and_ratio(req)
    return -(-MAX_PIXELS[resolution] * FPS * req.seconds // 1024)


def _typed(name: str, value: Any) -> Any:
    """Multipart sends every field as text; Ark wants booleans and a number."""
    if not isinstance(value, str):
        return value
    if name == "seed":
        return int(value) if value.lstrip("-").isdigit() else value
    return {"true": True, "false": False}.get(value.lower(), value)


def _headers(key: str) -> dict[str, str]:
    return {
        "authorization": "Bearer " + key,
        "content-type": "application/json",
        "accept-encoding": "identity",
    }


def submit(channel: ChannelInfo, key: str, model: str, req: VideoRequest) -> Target:
    content: list[dict[str, Any]] = [{"type": "text", "text": req.prompt}]
    image_url = req.reference_url
    if req.reference is not None:
        encoded = base64.b64encode(req.reference.data).decode()
        image_url = f"data:{req.reference.content_type};base64,{encoded}"
    if image_url:
        content.append(
            {"type": "image_url", "image_url": {"url": image_url}, "role": "first_frame"}
        )
    video_url = req.extra.get("video_url")
    if isinstance(video_url, str) and video_url:
        content.append(
            {"type": "video_url", "video_url": {"url": video_url}, "role": "reference_video"}
        )
    resolution, ratio = resolution_and_ratio(req)
    body: dict[str, Any] = {
        "model": model,
        "content": content,
        "ratio": ratio,
        "resolution": resolution,
        "duration": req.seconds,
    }
    for name in ("generate_audio", "seed", "watermark"):
        if name in req.extra:
            body[name] = _typed(name, req.extra[name])
    url = channel.base_url + "/contents/generations/tasks"
    return Target("POST", url, _headers(key), orjson.dumps(body))


def read(obj: dict[str, Any]) -> UpstreamVideo:
    status = str(obj.get("status") or "")
    state = _STATES.get(status, "queued" if not status else "failed")
    code, message = error_of(obj.get("error"))
    if state == "failed" and not code:
        code = status if status in ("cancelled", "expired") else "upstream_failed"
    content = obj.get("content")
    url = content.get("video_url") if isinstance(content, dict) else None
    usage = obj.get("usage")
    tokens = as_int(usage.get("completion_tokens")) if isinstance(usage, dict) else None
    updated = as_int(obj.get("updated_at"))
    return UpstreamVideo(
        upstream_id=str(obj.get("id") or ""),
        state=state,
        progress=100 if state == "completed" else 0,
        seconds=as_int(obj.get("duration")),
        output_tokens=tokens,
        result_url=url if isinstance(url, str) else "",
        expires_at=updated + URL_LIFETIME if updated and state == "completed" else None,
        error_code=code if state == "failed" else "",
        error_message=message if state == "failed" else "",
    )


def status(channel: ChannelInfo, key: str, upstream_id: str) -> Target:
    return Target(
        "GET", f"{channel.base_url}/contents/generations/tasks/{upstream_id}", _headers(key)
    )


def cancel(channel: ChannelInfo, key: str, upstream_id: str) -> Target:
    return Target(
        "DELETE", f"{channel.base_url}/contents/generations/tasks/{upstream_id}", _headers(key)
    )


def content(channel: ChannelInfo, key: str, upstream_id: str, url: str, variant: str) -> Target:
    # The signed URL carries its own authorization; the channel's key is not sent to it.
    return Target("GET", url, {"accept-encoding": "identity"})


ADAPTER = VideoAdapter(submit=submit, read=read, status=status, cancel=cancel, content=content)
