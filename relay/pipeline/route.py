"""Step 4: which channels may serve this model, in the order to try them."""

from __future__ import annotations

import random
from itertools import groupby

from relay.catalog import ChannelInfo, catalog
from relay.cooldown import cooldowns

_rng = random.SystemRandom()


def _weighted_order(channels: list[ChannelInfo]) -> list[ChannelInfo]:
    """Weighted random order without replacement (Efraimidis-Spirakis keys)."""
    if len(channels) == 1:
        return channels
    return sorted(channels, key=lambda c: _rng.random() ** (1.0 / c.weight), reverse=True)


async def candidates(model: str, group: str) -> list[ChannelInfo]:
    """Highest priority first, weighted random inside a priority, cooling channels last.

    Cooling channels are kept at the very end so that a model whose every channel is
    cooling down still gets one try rather than a certain failure.
    """
    eligible = [
        c
        for c in await catalog.channels()
        if model in c.models and (not c.groups or group in c.groups)
    ]
    if not eligible:
        return []
    cooling = await cooldowns.cooling()
    ready = [c for c in eligible if c.id not in cooling]
    resting = [c for c in eligible if c.id in cooling]
    ordered: list[ChannelInfo] = []
    for part in (ready, resting):
        part.sort(key=lambda c: -c.priority)
        for _, same in groupby(part, key=lambda c: c.priority):
            ordered.extend(_weighted_order(list(same)))
    return ordered
