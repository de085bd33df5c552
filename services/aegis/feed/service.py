"""The feed service process: FeedEngine in the background, FeedService answering status queries.

Health: SERVING once the ring exists and Redis answers (the feed does not need PostgreSQL: it keeps ingesting
through a database outage). The feed publishes a status snapshot to Redis every few seconds for the orchestrator.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from typing import Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from aegis import observability
from aegis.errors import ValidationError
from aegis.feed.engine import FeedEngine
from aegis.server import Registration, ServiceContext, ServiceDefinition, ServiceParts, abort_with
from aegis.storage import keys
from aegis.v1 import feed_pb2 as feed_pb
from aegis.v1 import feed_pb2_grpc as feed_grpc

log = logging.getLogger("aegis.feed")

_STATE = {
    "NEW": feed_pb.CONNECTION_STATE_CONNECTING,
    "CONNECTING": feed_pb.CONNECTION_STATE_CONNECTING,
    "CONNECTED": feed_pb.CONNECTION_STATE_OPEN,
    "BACKOFF": feed_pb.CONNECTION_STATE_RECONNECTING,
    "CLOSED": feed_pb.CONNECTION_STATE_CLOSED,
}
_KIND = {
    "aggTrade": feed_pb.STREAM_KIND_AGG_TRADE,
    "bookTicker": feed_pb.STREAM_KIND_BOOK_TICKER,
    "markPrice@1s": feed_pb.STREAM_KIND_MARK_PRICE,
    "kline_1m": feed_pb.STREAM_KIND_KLINE,
    "forceOrder": feed_pb.STREAM_KIND_LIQUIDATION,
}


def _timestamp(ns: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp


def _endpoint(url: str) -> int:
    return feed_pb.STREAM_ENDPOINT_PUBLIC if url.rstrip("/").endswith("/public") else feed_pb.STREAM_ENDPOINT_MARKET


def feed_status(engine: FeedEngine, symbol: str | None = None) -> feed_pb.GetFeedStatusResponse:
    """Return the feed's status as the API's message."""
    import aegis

    state = engine.state
    response = feed_pb.GetFeedStatusResponse(
        source=feed_pb.FEED_SOURCE_REPLAY if state.source == "replay" else feed_pb.FEED_SOURCE_LIVE,
        messages_per_second=state.messages_per_second,
        start_time=_timestamp(state.started_at_ns),
        version=aegis.__version__,
    )
    for index, conn in enumerate(state.connections):
        stats = conn.stats
        entry = response.connections.add(
            connection_id=f"{index}:{conn.plan.name}",
            url=conn.plan.url,
            endpoint=_endpoint(conn.plan.base_url),
            state=_STATE.get(stats.state, feed_pb.CONNECTION_STATE_UNSPECIFIED),
            stream_count=len(conn.plan.streams),
            streams=list(conn.plan.streams),
            reconnects=max(0, stats.connects - 1),
            messages_total=stats.messages,
            last_error=stats.last_error,
        )
        if stats.last_message_ns:
            entry.last_message_time.CopyFrom(_timestamp(stats.last_message_ns))
    pipeline = engine.pipeline
    if pipeline is not None:
        stats = pipeline.stats
        response.messages_total = stats.frames_in
        response.rejects_total = stats.rejected
        for reason, count in sorted(stats.rejected_by_reason.items()):
            by_symbol = {s: r[reason] for s, r in stats.rejected_by_symbol.items() if reason in r}
            if symbol is not None:
                count = by_symbol.get(symbol, 0)
                if not count:
                    continue
            response.rejects.add(reason=reason, count=count)
        now_ns = time.time_ns()
        for name in state.symbols:
            if symbol is not None and name != symbol:
                continue
            fresh = response.symbols.add(symbol=name, shard_index=engine.settings.shard)
            last = stats.last_recv_time_ns_by_symbol.get(name)
            if last:
                fresh.last_message_time.CopyFrom(_timestamp(last))
                age = duration_pb2.Duration()
                age.FromNanoseconds(max(0, now_ns - last))
                fresh.last_message_age.CopyFrom(age)
    writer = engine.writer
    if writer is not None:
        response.rings.add(
            shard_index=engine.settings.shard,
            path=str(engine.settings.ring_file),
            capacity=engine.settings.feed.ring_capacity,
            slot_size_bytes=128,
            published_sequence=writer.published,
            writer_epoch=writer.epoch,
            symbols=list(writer.symbols().values()),
        )
    return response


class FeedServicer(feed_grpc.FeedServiceServicer):
    """Translate FeedService calls to the engine's state."""

    def __init__(self, engine: FeedEngine) -> None:
        self._engine = engine

    async def GetFeedStatus(self, request: feed_pb.GetFeedStatusRequest, context: Any) -> Any:
        symbol = request.symbol.strip().upper() if request.HasField("symbol") else None
        if symbol is not None and symbol not in self._engine.state.symbols:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"symbol: {symbol!r} is not followed by this feed")
        return feed_status(self._engine, symbol)

    async def ListStreams(self, request: feed_pb.ListStreamsRequest, context: Any) -> Any:
        try:
            page_size, offset = _page(request.page_size, request.page_token)
        except ValidationError as exc:
            await abort_with(context, exc)
        symbol = request.symbol.strip().upper() if request.HasField("symbol") else None
        rows = []
        for index, conn in enumerate(self._engine.state.connections):
            for name in conn.plan.streams:
                stream_symbol, _, kind = name.partition("@")
                kind_code = _KIND.get(kind, feed_pb.STREAM_KIND_UNSPECIFIED)
                if symbol is not None and stream_symbol.upper() != symbol:
                    continue
                if request.kind and kind_code != request.kind:
                    continue
                rows.append(
                    feed_pb.StreamSubscription(
                        name=name,
                        symbol=stream_symbol.upper(),
                        kind=kind_code,
                        connection_id=f"{index}:{conn.plan.name}",
                        endpoint=_endpoint(conn.plan.base_url),
                    )
                )
        page = rows[offset : offset + page_size]
        token = _token(offset + page_size) if offset + page_size < len(rows) else ""
        return feed_pb.ListStreamsResponse(streams=page, next_page_token=token)


def _page(size: int, token: str) -> tuple[int, int]:
    if size < 0:
        raise ValidationError("page_size", "must not be negative")
    size = min(size or 100, 1000)
    if not token:
        return size, 0
    try:
        offset = int(json.loads(base64.urlsafe_b64decode(token.encode()))["o"])
    except (ValueError, KeyError, TypeError):
        raise ValidationError("page_token", "is not a token this service issued") from None
    if offset < 0:
        raise ValidationError("page_token", "is not a token this service issued")
    return size, offset


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


async def setup(ctx: ServiceContext) -> ServiceParts:
    engine = FeedEngine(ctx.settings)

    async def publish_status() -> None:
        assert ctx.cache is not None
        key = keys.service_status("feed", str(ctx.settings.shard))
        final_published = False
        while True:
            # A replay's end is published at once (aegis replay waits for it), not up to 5 s later. The replay loop
            # does not yield at max speed, so this task may first run after it ended.
            if not engine.replay_done.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(engine.replay_done.wait(), 5)
            elif final_published:
                await asyncio.sleep(5)
            if engine.pipeline is None:
                continue
            final_published = engine.replay_done.is_set()
            snapshot = {
                "shard": ctx.settings.shard,
                "messages_per_second": engine.state.messages_per_second,
                **engine.pipeline.stats.to_dict(),
            }
            if engine.state.replay_started_ns is not None:
                snapshot["replay_started_ns"] = engine.state.replay_started_ns
                snapshot["replay_finished_ns"] = engine.state.replay_finished_ns
            try:
                await ctx.cache.client.set(key, json.dumps(snapshot), ex=keys.SERVICE_STATUS_TTL_S)
            except Exception as exc:
                log.debug("status not published: %s", exc)

    return ServiceParts(
        registrations=[
            Registration(feed_grpc.add_FeedServiceServicer_to_server, FeedServicer(engine), "aegis.v1.FeedService")
        ],
        background=[engine.run, publish_status],
        ready=engine.ready.is_set,
        metrics=observability.feed_collectors(engine),
    )


DEFINITION = ServiceDefinition(name="feed", setup=setup, needs_postgres=False, needs_redis=True)
