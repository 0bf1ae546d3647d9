"""The states a digest, a run and a suppression can be in: one home for each vocabulary.

`StrEnum`s, so a value is also the string the state file stores ("sent" == DeliveryStatus.SENT),
and rows written by earlier versions read back as members.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryStatus(StrEnum):
    """One reader's digest for one date, in the send ledger.

    pending → sending → sent | failed | unknown. 'sending' is committed before the message goes
    out and 'sent' only after the server accepted it, so a crash in between leaves 'sending',
    which the next run reads as 'unknown' (it may have arrived).
    """

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"

    @property
    def finished(self) -> bool:
        """No run sends it again on its own (unknown ones wait for --retry-unknown)."""
        return self in (DeliveryStatus.SENT, DeliveryStatus.FAILED)


class RunStatus(StrEnum):
    """A run record for a date: 'running' until it ends, then how it ended."""

    RUNNING = "running"
    OK = "ok"  # every reader served
    PARTIAL = "partial"  # sending happened; some readers failed, are unknown or still pending
    FAILED = "failed"  # stopped before sending; the state is as it was
    # not stored: what `digest serve` reads a partial run with readers still pending as
    INTERRUPTED = "interrupted"

    @property
    def reached_sending(self) -> bool:
        return self in (RunStatus.OK, RunStatus.PARTIAL)


class SuppressionKind(StrEnum):
    """Why an address gets no mail, and what lifts it."""

    UNSUBSCRIBED = "unsubscribed"  # the reader asked; stands until `digest unsubscribe --undo`
    REFUSED = "refused"  # the server refused the address for good; lifted by editing the profile
