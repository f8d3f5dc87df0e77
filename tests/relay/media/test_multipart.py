"""multipart/form-data: what the SDKs send parses back exactly; anything malformed is a 400."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from relay.errors import RelayError
from relay.media import multipart
from relay.media.multipart import FilePart
from tests.fakes.media import FakeMedia
from tests.relay.conftest import Customer

BINARY = b"\r\n--not-the-boundary\r\n\x00\xff" * 100


def test_it_round_trips_fields_and_binary_files() -> None:
    body, ctype = multipart.encode(
        {"prompt": 'a "quoted" prompt\r\nwith lines', "n": "2"},
        [("image", FilePart("a b.png", "image/png", BINARY)), ("image", FilePart("c", "x/y", b""))],
    )

    form = multipart.parse(body, ctype)

    assert form.get("prompt") == 'a "quoted" prompt\r\nwith lines'
    assert form.get("n") == "2"
    assert form.files["image"] == [
        FilePart("a b.png", "image/png", BINARY),
        FilePart("c", "x/y", b""),
    ]


def test_it_reads_what_httpx_sends() -> None:
    request = httpx.Request(
        "POST", "http://x/", data={"model": "m", "prompt": "p"},
        files={"image": ("in.png", BINARY, "image/png")},
    )  # fmt: skip
    form = multipart.parse(request.read(), request.headers["content-type"])
    assert (form.get("model"), form.get("prompt")) == ("m", "p")
    assert form.files["image"][0].data == BINARY


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (
            b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b--',
            "multipart/form-data",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n',
            "multipart/form-data; boundary=b",
        ),
        (b"--b\r\nno blank line\r\n--b--", "multipart/form-data; boundary=b"),
        (
            b"--b\r\nContent-Disposition: form-data\r\n\r\n1\r\n--b--",
            "multipart/form-data; boundary=b",
        ),
        (
            b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n\xff\r\n--b--',
            "multipart/form-data; boundary=b",
        ),
        (
            b"--b" + b'\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--b' * 65 + b"--",
            "multipart/form-data; boundary=b",
        ),
        (b"", 'multipart/form-data; boundary="bad\x01"'),
    ],
)
def test_malformed_bodies_are_400s(body: bytes, ctype: str) -> None:
    with pytest.raises(RelayError) as caught:
        multipart.parse(body, ctype)
    assert caught.value.status == 400


def test_an_upload_over_the_body_limit_is_a_413_in_openai_format(
    customer: Customer, media: FakeMedia, settings: Any
) -> None:
    settings.RELAY_MAX_BODY_MB = 1
    response = httpx.post(
        customer.base_url + "/images/edits",
        headers={"authorization": f"Bearer {customer.secret}"},
        data={"model": "gpt-image-1", "prompt": "x"},
        files={"image": ("big.png", b"\0" * (2 * 1024 * 1024), "image/png")},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert media.seen == []
