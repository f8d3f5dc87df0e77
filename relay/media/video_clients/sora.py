"""OpenAI Sora through the Videos API: the client's request passes through (model mapped)."""

from __future__ import annotations

from typing import Any

import orjson

from relay.catalog import ChannelInfo
from relay.media import multipart
from relay.media.upstream_calls import Target
from relay.media.video_clients.base import (
    UpstreamVideo,
    VideoAdapter,
    VideoRequest,
    as_int,
    error_of,
)

_STATES = {"queued": "queued", "in_progress": "in_progress", "completed": "completed"}


def _auth(channel: ChannelInfo, key: str, path: str) -> tuple[str, dict[str, str]]:
    headers = {
        "authorization": "Bearer " + key,
        "content-type": "application/json",
        "accept-encoding": "identity",
    }
    return channel.base_url + path, headers


def submit(channel: ChannelInfo, key: str, model: str, req: VideoRequest) -> Target:
    url, headers = _auth(channel, key, "/videos")
    fields = {"model": model, "prompt": req.prompt, "seconds": str(req.seconds), "size": req.size}
    if req.reference is not None:
        body, headers["content-type"] = multipart.encode(
            fields, [("input_reference", req.reference)]
        )
        return Target("POST", url, headers, body)
    payload: dict[str, Any] = dict(fields)
    if req.reference_url:
        payload["input_reference"] = {"image_url": req.reference_url}
    if req.multipart:
        body, headers["content-type"] = multipart.encode(fields, [])
        return Target("POST", url, headers, body)
    return Target("POST", url, headers, orjson.dumps(payload))


def read(obj: dict[str, Any]) -> UpstreamVideo:
    status = str(obj.get("status") or "")
    code, message = error_of(obj.get("error"))
    state = _STATES.get(status, "failed")
    if state == "failed" and not code:
        code = "upstream_failed" if status == "failed" else f"unknown_status_{status[:20]}"
    return UpstreamVideo(
        upstream_id=str(obj.get("id") or ""),
        state=state,
        progress=max(0, min(100, as_int(obj.get("progress")) or 0)),
        seconds=as_int(obj.get("seconds")),
        expires_at=as_int(obj.get("expires_at")),
        error_code=code if state == "failed" else "",
        error_message=message if state == "failed" else "",
    )


def status(channel: ChannelInfo, key: str, upstream_id: str) -> Target:
    url, headers = _auth(channel, key, f"/videos/{upstream_id}")
    return Target("GET", url, headers)


def cancel(channel: ChannelInfo, key: str, upstream_id: str) -> Target:
    url, headers = _auth(channel, key, f"/videos/{upstream_id}")
    return Target("DELETE", url, headers)


def content(channel: ChannelInfo, key: str, upstream_id: str, _url: str, variant: str) -> Target:
    url, headers = _auth(channel, key, f"/videos/{upstream_id}/content")
    if variant and variant != "video":
        url += f"?variant={variant}"
    headers["accept"] = "application/binary"
    return Target("GET", url, headers)


ADAPTER = VideoAdapter(submit=submit, read=read, status=status, cancel=cancel, content=content)
