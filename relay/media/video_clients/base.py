"""What every video task client shares: the client's OpenAI Videos create request, an
upstream task's state, and the adapter each provider's client (sora.py, seedance.py)
fills in; relay/channel_types.py maps a channel type to its adapter.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from relay.catalog import ChannelInfo
from relay.errors import bad_request
from relay.media import multipart
from relay.media.multipart import FilePart
from relay.media.request_fields import prompt_and_model
from relay.media.upstream_calls import Target

DEFAULT_MODEL = "sora-2"
DEFAULT_SECONDS = 4
DEFAULT_SIZE = "720x1280"
MAX_SECONDS = 60
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
# Fields the Sora API does not know but Seedance does; accepted as extra body fields.
EXTRA_FIELDS = ("resolution", "ratio", "video_url", "generate_audio", "seed", "watermark")


@dataclass
class VideoRequest:
    model: str
    prompt: str
    seconds: int
    size: str
    reference: FilePart | None = None  # an uploaded input_reference image
    reference_url: str | None = None  # input_reference {"image_url": ...}
    extra: dict[str, Any] = field(default_factory=dict)
    multipart: bool = False

    @property
    def dimensions(self) -> tuple[int, int]:
        width, _, height = self.size.partition("x")  # checked at parse time
        return int(width), int(height)


@dataclass
class UpstreamVideo:
    """An upstream task's state, in OpenAI's vocabulary."""

    upstream_id: str
    state: str  # queued, in_progress, completed, failed
    progress: int = 0
    seconds: int | None = None
    output_tokens: int | None = None
    result_url: str = ""
    expires_at: int | None = None
    error_code: str = ""
    error_message: str = ""


@dataclass(frozen=True)
class VideoAdapter:
    submit: Callable[[ChannelInfo, str, str, VideoRequest], Target]  # channel, key, model
    read: Callable[[dict[str, Any]], UpstreamVideo]
    status: Callable[[ChannelInfo, str, str], Target]  # channel, key, upstream id
    cancel: Callable[[ChannelInfo, str, str], Target]
    # channel, key, upstream id, stored result URL, variant -> where the file is
    content: Callable[[ChannelInfo, str, str, str, str], Target]


def _seconds(value: Any) -> int:
    if isinstance(value, bool):
        value = None
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        raise bad_request("'seconds' must be a whole number of seconds.", param="seconds") from None
    if not 1 <= seconds <= MAX_SECONDS:
        raise bad_request(
            f"'seconds' must be between 1 and {MAX_SECONDS}.", param="seconds"
        ) from None
    return seconds


def parse_request(raw: bytes, content_type: str) -> VideoRequest:
    """The client's POST /v1/videos body, JSON or multipart (the SDK sends multipart)."""
    reference: FilePart | None = None
    reference_url: str | None = None
    if multipart.is_multipart(content_type):
        form = multipart.parse(raw, content_type)
        values: dict[str, Any] = {name: form.get(name) for name in form.fields}
        files = form.files.get("input_reference")
        if files:
            reference = files[0]
        is_multipart = True
    else:
        try:
            values = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise bad_request("We could not parse the JSON body of your request.") from None
        if not isinstance(values, dict):
            raise bad_request("The request body must be a JSON object.")
        is_multipart = False
    ref = values.get("input_reference")
    if isinstance(ref, dict):
        url = ref.get("image_url")
        if not isinstance(url, str) or not url:
            raise bad_request(
                "'input_reference' must be a file or {\"image_url\": ...}.",
                param="input_reference",
            )
        reference_url = url
    elif isinstance(ref, str) and ref.startswith(("http://", "https://", "data:")):
        reference_url = ref
    prompt, model = prompt_and_model(values, DEFAULT_MODEL)
    size = values.get("size") or DEFAULT_SIZE
    if not isinstance(size, str) or not _SIZE.match(size):
        raise bad_request("'size' must look like 1280x720.", param="size")
    seconds = _seconds(values.get("seconds") or DEFAULT_SECONDS)
    extra = {name: values[name] for name in EXTRA_FIELDS if values.get(name) is not None}
    return VideoRequest(
        model=model,
        prompt=prompt,
        seconds=seconds,
        size=size,
        reference=reference,
        reference_url=reference_url,
        extra=extra,
        multipart=is_multipart,
    )


def error_of(obj: Any) -> tuple[str, str]:
    """(code, message) of an upstream error object, message cut to what we store."""
    if not isinstance(obj, dict):
        return "", ""
    code = obj.get("code") or obj.get("type") or "upstream_failed"
    message = obj.get("message") or ""
    return str(code)[:64], str(message)[:300]


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
