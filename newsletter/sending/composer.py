"""A worker's messages, each composed while the message before it is on the wire.

Composing asks for the message's DKIM signature (``mail.signing_process``), which a process
on another CPU makes in about a quarter of a millisecond: asked for one message ahead, it is
made by the time the message is sent, and the worker never waits for it. Composing reads and
writes nothing that marks a delivery; the message is sent only once the engine has marked
its delivery ``sending``, and one composed for a delivery that is not sent is dropped.
"""

from __future__ import annotations

from newsletter.mail.wire import Outgoing
from newsletter.sending.jobs import ClaimedDelivery, Job, Skip

__all__ = ["Composer"]

Composed = Outgoing | Skip | None


class Composer:
    """One worker's: not shared between threads."""

    def __init__(self, job: Job) -> None:
        self.job = job
        self._ahead: tuple[int, Composed | Exception] | None = None

    def compose(self, delivery: ClaimedDelivery) -> Composed:
        """The job's message for ``delivery`` (composed ahead, or now); raises what
        composing it raised."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead[0] == delivery.id:
            result = ahead[1]
        else:
            result = self._attempt(delivery)
        if isinstance(result, Exception):
            raise result
        return result

    def compose_ahead(self, delivery: ClaimedDelivery) -> None:
        """Compose ``delivery``'s message now, for :meth:`compose` to give next."""
        self._ahead = (delivery.id, self._attempt(delivery))

    def _attempt(self, delivery: ClaimedDelivery) -> Composed | Exception:
        try:
            return self.job.compose(delivery)
        except Exception as error:  # raised when the message is wanted, as if composed then
            return error
