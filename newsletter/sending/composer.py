"""A worker's messages, each composed while the message before it is on the wire.

Composing asks for the message's DKIM signature (``mail.signing_process``), which a process
on another CPU makes in about a quarter of a millisecond: asked for one message ahead, it is
made by the time the message is sent, and the worker never waits for it. Composing reads and
writes nothing that marks a delivery; the message is sent only once the engine has marked
its delivery ``sending``, and one composed for a delivery that is not sent is dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from newsletter.mail.wire import Outgoing
from newsletter.sending.jobs import ClaimedDelivery, Job, Skip

__all__ = ["Composer", "Taken"]

Composed = Outgoing | Skip | None
#: How many messages a worker composes ahead: a signature asked for one message ahead was
#: not yet made for three messages in ten (the signing processes share a core, each
#: woken in turn); two ahead leave it time.
AHEAD = 2


@dataclass(frozen=True)
class Taken:
    """A message composed for a delivery, or what composing it raised."""

    outcome: Composed | Exception

    def result(self) -> Composed:
        """The message; raises what composing it raised."""
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return self.outcome


class Composer:
    """One worker's: not shared between threads."""

    def __init__(self, job: Job, ahead: int = AHEAD) -> None:
        self.job = job
        self.depth = ahead
        self._ahead: dict[int, Composed | Exception] = {}

    def take(self, delivery: ClaimedDelivery) -> Taken:
        """The job's message for ``delivery``: composed ahead, or now."""
        if delivery.id in self._ahead:
            return Taken(self._ahead.pop(delivery.id))
        return Taken(self._attempt(delivery))

    def compose_ahead(self, upcoming: Sequence[ClaimedDelivery]) -> None:
        """Have the messages of the first deliveries of ``upcoming`` composed, for
        :meth:`take` to give when their turn comes; any other composed ahead is dropped."""
        self._ahead = {
            delivery.id: (
                self._ahead[delivery.id] if delivery.id in self._ahead else self._attempt(delivery)
            )
            for delivery in upcoming[: self.depth]
        }

    def _attempt(self, delivery: ClaimedDelivery) -> Composed | Exception:
        try:
            return self.job.compose(delivery)
        except Exception as error:  # raised when the message is wanted, as if composed then
            return error
