"""Prometheus metrics for the relay: counted in process, shared through Redis.

Each relay process adds settled requests and upstream failures to a local counter (a few
dict updates, no I/O on the request path) and a background task folds the counter into
one Redis hash about once a second, so a scrape of any process sees the whole
deployment. Without Redis (embedded mode: one process) the local counter is the truth.
Unflushed counts of a killed process are lost; these are metrics, not the ledger.
"""

from __future__ import annotations

import asyncio
import bisect
import hmac
import ipaddress
import logging
from collections import Counter

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from accounts.network import IPNetwork, client_ip, ip_allowed
from billing.selectors import uncollected_by_channel
from logs.records import RequestRecord
from relay.redis_client import redis
from relay.selectors import channel_overreport_flags

log = logging.getLogger(__name__)

HASH = "th:metrics"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
SEP = "\x1f"  # between a metric's name and its label values inside one hash field
TOKEN_KINDS = ("prompt", "completion", "cache_read", "cache_write", "reasoning")


class Collector:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()  # what this process has not flushed yet
        self.totals: Counter[str] = Counter()  # everything, for the embedded mode
        self._flusher: asyncio.Task[None] | None = None

    def request(self, record: RequestRecord, cost: int) -> None:
        """Count one settled request from its log row (metadata only) and its cost."""
        channel = record.channel_id or 0
        # Only models that reached a channel become labels: callers choose model names,
        # and unknown ones must not grow the label set without bound.
        model = record.model if channel else ""
        endpoint = record.endpoint
        c = self.counts
        c[
            f"requests{SEP}{endpoint}{SEP}{model}{SEP}{channel}{SEP}{record.status_code // 100}xx"
        ] += 1
        for kind in TOKEN_KINDS:
            tokens = getattr(record, f"{kind}_tokens")
            if tokens:
                c[f"tokens{SEP}{model}{SEP}{kind}"] += tokens
        if cost:
            c[f"cost{SEP}{model}"] += cost
        latency_ms = record.latency_ms
        bucket = bisect.bisect_left(LATENCY_BUCKETS, latency_ms / 1000)
        c[f"latency{SEP}{endpoint}{SEP}{bucket}"] += 1
        c[f"latency_sum{SEP}{endpoint}"] += latency_ms
        self._schedule()

    def upstream_error(self, channel_id: int, status: int) -> None:
        self.counts[f"upstream_errors{SEP}{channel_id}{SEP}{status}"] += 1
        self._schedule()

    def _schedule(self) -> None:
        if not settings.REDIS_URL:
            self.totals.update(self.counts)
            self.counts.clear()
            return
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(settings.METRICS_FLUSH_SECONDS)
        await self.flush()

    async def flush(self) -> None:
        """Fold this process's counts into the shared Redis hash."""
        client = redis()
        if client is None or not self.counts:
            return
        counts, self.counts = self.counts, Counter()
        try:
            pipe = client.pipeline(transaction=False)
            for field, value in counts.items():
                pipe.hincrby(HASH, field, value)
            await pipe.execute()
        except Exception as exc:  # Redis away: keep the counts for the next flush
            self.counts.update(counts)
            log.warning("metrics flush failed: %s", type(exc).__name__)

    def snapshot(self) -> dict[str, int]:
        """Every counter of the deployment (synchronous, for the /metrics view)."""
        if not settings.REDIS_URL:
            return dict(self.totals)
        import redis as sync_redis

        client = sync_redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, decode_responses=True
        )
        return {str(k): int(v) for k, v in client.hgetall(HASH).items()}


collector = Collector()


def _labels(**labels: object) -> str:
    def escape(value: object) -> str:
        return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    return "{" + ",".join(f'{k}="{escape(v)}"' for k, v in labels.items()) + "}"


def render(counts: dict[str, int]) -> str:
    """The Prometheus text exposition format (version 0.0.4) of COUNTS."""
    by_name: dict[str, list[tuple[list[str], int]]] = {}
    for field, value in counts.items():
        name, *values = field.split(SEP)
        by_name.setdefault(name, []).append((values, value))
    out: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        out.append(f"# HELP {name} {help_text}")
        out.append(f"# TYPE {name} {kind}")

    family("tokenhub_requests_total", "counter", "Settled relay requests.")
    for (endpoint, model, channel, status), value in sorted(by_name.get("requests", [])):
        labels = _labels(endpoint=endpoint, model=model, channel=channel, status=status)
        out.append(f"tokenhub_requests_total{labels} {value}")
    family("tokenhub_tokens_total", "counter", "Tokens the upstreams reported, by kind.")
    for (model, kind), value in sorted(by_name.get("tokens", [])):
        out.append(f"tokenhub_tokens_total{_labels(model=model, kind=kind)} {value}")
    family("tokenhub_cost_usd_total", "counter", "Amount charged to customers, in USD.")
    for (model,), value in sorted(by_name.get("cost", [])):
        out.append(f"tokenhub_cost_usd_total{_labels(model=model)} {value / 1_000_000:.6f}")
    family("tokenhub_upstream_errors_total", "counter", "Failed upstream attempts by channel.")
    for (channel, status), value in sorted(by_name.get("upstream_errors", [])):
        labels = _labels(channel=channel, status=status)
        out.append(f"tokenhub_upstream_errors_total{labels} {value}")
    family("tokenhub_request_duration_seconds", "histogram", "Relay request latency.")
    per_endpoint: dict[str, list[int]] = {}
    for (endpoint, bucket), value in by_name.get("latency", []):
        per_endpoint.setdefault(endpoint, [0] * (len(LATENCY_BUCKETS) + 1))[int(bucket)] += value
    sums = {endpoint: value for (endpoint,), value in by_name.get("latency_sum", [])}
    for endpoint, buckets in sorted(per_endpoint.items()):
        running = 0
        for bound, value in zip((*LATENCY_BUCKETS, "+Inf"), buckets, strict=True):
            running += value
            labels = _labels(endpoint=endpoint, le=bound)
            out.append(f"tokenhub_request_duration_seconds_bucket{labels} {running}")
        labels = _labels(endpoint=endpoint)
        out.append(
            f"tokenhub_request_duration_seconds_sum{labels} {sums.get(endpoint, 0) / 1000:.3f}"
        )
        out.append(f"tokenhub_request_duration_seconds_count{labels} {running}")
    return "\n".join(out) + "\n"


def metrics_view(request: HttpRequest) -> HttpResponse:
    """GET /metrics: for a bearer METRICS_TOKEN, or from METRICS_ALLOWED_IPS."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("authorization", "")
    by_token = bool(token) and hmac.compare_digest(header.encode(), f"Bearer {token}".encode())
    ip = client_ip(request.META.get("REMOTE_ADDR"), request.headers.get("x-forwarded-for", ""))
    if not by_token and not ip_allowed(ip, _allowed_networks()):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    body = render(collector.snapshot()) + _uncollected() + _overreport_flags()
    return HttpResponse(body, content_type="text/plain; version=0.0.4; charset=utf-8")


def _uncollected() -> str:
    """From the database, not this process: every process's settlements count."""
    out = [
        "# HELP tokenhub_uncollected_usd_total Usage upstreams reported beyond the "
        "requests' holds: paid upstream, not charged, in USD.",
        "# TYPE tokenhub_uncollected_usd_total counter",
    ]
    for channel, micros in sorted(uncollected_by_channel().items(), key=lambda i: i[0] or 0):
        labels = _labels(channel=channel if channel is not None else "")
        out.append(f"tokenhub_uncollected_usd_total{labels} {micros / 1_000_000:.6f}")
    return "\n".join(out) + "\n"


def _overreport_flags() -> str:
    out = [
        "# HELP tokenhub_channel_overreport_flagged 1 while the channel is flagged for "
        "reporting usage beyond the requests' holds (see the channel admin).",
        "# TYPE tokenhub_channel_overreport_flagged gauge",
    ]
    for channel, flagged in sorted(channel_overreport_flags().items()):
        out.append(f"tokenhub_channel_overreport_flagged{_labels(channel=channel)} {int(flagged)}")
    return "\n".join(out) + "\n"


def _allowed_networks() -> list[IPNetwork]:
    return [ipaddress.ip_network(n, strict=False) for n in settings.METRICS_ALLOWED_IPS]
