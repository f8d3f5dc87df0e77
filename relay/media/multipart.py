"""multipart/form-data in both directions: parsing what the SDKs upload, building what
upstreams expect. Bytes in, bytes out; nothing touches the disk."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from email.message import Message

from relay.errors import bad_request

_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{1,70}$")
MAX_PARTS = 64


@dataclass(frozen=True, slots=True)
class FilePart:
    filename: str
    content_type: str
    data: bytes


@dataclass
class Form:
    """Text fields (last value wins, or all of them) and files by field name."""

    fields: dict[str, list[str]] = field(default_factory=dict)
    files: dict[str, list[FilePart]] = field(default_factory=dict)

    def get(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[-1] if values else None


def is_multipart(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "multipart/form-data"


def _header_params(value: str, header: str) -> Message:
    message = Message()
    message[header] = value
    return message


def parse(body: bytes, content_type: str) -> Form:
    """Parse a multipart/form-data BODY; a malformed one is a 400, never a crash."""
    ctype = _header_params(content_type, "content-type")
    boundary = ctype.get_param("boundary", header="content-type")
    if not isinstance(boundary, str) or not _BOUNDARY.match(boundary):
        raise bad_request("The multipart body has no valid boundary.")
    delimiter = b"--" + boundary.encode("latin-1")
    chunks = body.split(delimiter)
    # chunks[0] is the preamble; the last one starts with "--" (the close delimiter).
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise bad_request("The multipart body is incomplete.")
    if len(chunks) - 2 > MAX_PARTS:
        raise bad_request(f"The multipart body has more than {MAX_PARTS} parts.")
    form = Form()
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n") or not chunk.endswith(b"\r\n"):
            raise bad_request("The multipart body is malformed.")
        head, sep, data = chunk[2:-2].partition(b"\r\n\r\n")
        if not sep:
            raise bad_request("A multipart part has no header block.")
        headers: dict[str, str] = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            header, colon, value = line.partition(":")
            if colon:
                headers[header.strip().lower()] = value.strip()
        disposition = _header_params(headers.get("content-disposition", ""), "cd")
        name = disposition.get_param("name", header="cd")
        if not isinstance(name, str) or not name:
            raise bad_request("A multipart part has no field name.")
        raw_filename = disposition.get_param("filename", header="cd")
        if isinstance(raw_filename, str):
            part = FilePart(
                filename=raw_filename[:200] or "upload",
                content_type=headers.get("content-type", "application/octet-stream")[:100],
                data=data,
            )
            form.files.setdefault(name, []).append(part)
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                raise bad_request(f"The form field '{name[:50]}' is not UTF-8 text.") from None
            form.fields.setdefault(name, []).append(text)
    return form


def encode(fields: dict[str, str], files: list[tuple[str, FilePart]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = "tokenhub-" + secrets.token_hex(16)
    out: list[bytes] = []
    for name, value in fields.items():
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'
        out.append(head.encode() + value.encode() + b"\r\n")
    for name, part in files:
        out.append(
            (
                f"--{boundary}\r\nContent-Disposition: form-data; "
                f'name="{_quote(name)}"; filename="{_quote(part.filename)}"\r\n'
                f"Content-Type: {part.content_type}\r\n\r\n"
            ).encode()
            + part.data
            + b"\r\n"
        )
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "").replace("\n", "")
