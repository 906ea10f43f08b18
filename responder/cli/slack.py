"""`responder slack`: take Slack button clicks over Socket Mode until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal

from responder import bootstrap
from responder.service.slack.socket_mode import checked_app_token
from responder.settings import Settings
from responder.streams.topics import ensure_topics


async def run_socket_mode(settings: Settings) -> None:
    """Connect to Slack with the app-level token and hand each click to the Slack front end;
    commands go to Kafka through one producer, started first and stopped last."""
    checked_app_token(settings.slack.app_token)  # before anything is opened
    engine = bootstrap.database(settings)
    publisher = bootstrap.kafka_publisher(settings)
    front = bootstrap.socket_mode(settings, engine, publisher)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await ensure_topics(settings.kafka)
    await publisher.start()
    try:
        await front.run(stop)
    finally:
        await publisher.stop()
        engine.dispose()
