"""The fields every OpenAI media request (images, videos) carries: a prompt and a model."""

from __future__ import annotations

from typing import Any

from relay.errors import bad_request


def prompt_and_model(values: dict[str, Any], default_model: str) -> tuple[str, str]:
    """The request's non-blank prompt and its model (DEFAULT_MODEL when none is named)."""
    prompt = values.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise bad_request("You must provide a prompt.", param="prompt")
    model = values.get("model") or default_model
    if not isinstance(model, str):
        raise bad_request("'model' must be a string.", param="model")
    return prompt, model
