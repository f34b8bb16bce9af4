"""Command-line commands, registered on the app so ``flask --app newsletter`` finds them too."""

from __future__ import annotations

from flask import Flask

from newsletter.cli import (
    articles_commands,
    auto_commands,
    bounces_commands,
    db_commands,
    digest_commands,
    dkim_commands,
    embed_commands,
    outbox_commands,
    send_commands,
    subscribers_commands,
    topics_commands,
)

__all__ = ["register_commands"]


def register_commands(app: Flask) -> None:
    app.cli.add_command(db_commands.db)
    app.cli.add_command(outbox_commands.outbox)
    app.cli.add_command(articles_commands.articles)
    digest_commands.digest.add_command(send_commands.send)
    digest_commands.digest.add_command(send_commands.status)
    digest_commands.digest.add_command(auto_commands.auto)
    app.cli.add_command(digest_commands.digest)
    app.cli.add_command(subscribers_commands.subscribers)
    app.cli.add_command(topics_commands.topics)
    app.cli.add_command(embed_commands.embed)
    app.cli.add_command(dkim_commands.dkim)
    app.cli.add_command(bounces_commands.bounces)
