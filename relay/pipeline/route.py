"""Step 4: which channels may serve this model, in the order to try them."""

from __future__ import annotations

import logging
import random
from itertools import groupby

from billing.pricing import PriceSheet
from relay import affinity as affinities
from relay.catalog import ChannelInfo, catalog
from relay.cooldown import cooldowns
from relay.errors import model_not_found, model_not_priced, no_channel

log = logging.getLogger(__name__)
_rng = random.SystemRandom()


def _weighted_order(channels: list[ChannelInfo]) -> list[ChannelInfo]:
    """Weighted random order without replacement (Efraimidis-Spirakis keys)."""
    if len(channels) == 1:
        return channels
    return sorted(channels, key=lambda c: _rng.random() ** (1.0 / c.weight), reverse=True)


def _affine_order(channels: list[ChannelInfo], affinity: bytes) -> list[ChannelInfo]:
    """The same weighted order for every call of one conversation (relay/affinity.py)."""
    return sorted(channels, key=lambda c: affinities.rank(affinity, c.id, c.weight), reverse=True)


async def candidates(model: str, group: str, affinity: bytes = b"") -> list[ChannelInfo]:
    """Highest priority first, weighted inside a priority, cooling channels last.

    Inside a priority the order is weighted random, or, given an AFFINITY, weighted but
    the same for every call that shares it (prompt caches stay warm). Cooling channels are
    kept at the very end so that a model whose every channel is cooling down still gets
    one try rather than a certain failure.
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
            same_priority = list(same)
            if affinity:
                ordered.extend(_affine_order(same_priority, affinity))
            else:
                ordered.extend(_weighted_order(same_priority))
    return ordered


def routable_price(
    model: str, price: PriceSheet | None, *, routed: bool, known: bool
) -> PriceSheet:
    """MODEL's PRICE when a channel of the endpoint's kind serves it (ROUTED); else the
    refusal: 503 when the operator offers the model (it has a price, or channels of
    another kind: KNOWN) but none can take this call, 404 for a model nobody offers.
    A model with channels but no price is refused (503), never served unbilled."""
    if not routed:
        raise no_channel(model) if price is not None or known else model_not_found(model)
    if price is None:
        log.error("model %s has channels but no price; refusing to serve it unbilled", model)
        raise model_not_priced(model)
    return price
