"""Which ticket partitions a ledger takes: ``--partitions K/N``, share K of N.

The IVR publishes each ticket on ``<root>/ticket/created/<p>``, ``p`` given by its contract
(:func:`ivr.events.partition_of`), so any broker routes a partition to whichever ledger subscribed
to it, and one contract's tickets stay in one ordered stream. N ledgers each take the partitions
``p`` with ``p % N == K - 1``: together every partition once, whatever N up to
:data:`~ivr.events.PARTITIONS` (a split that does not divide it is uneven, never incomplete).
"""

from __future__ import annotations

from dataclasses import dataclass

from ivr.events import PARTITIONS

__all__ = ["PartitionShare"]


@dataclass(frozen=True, slots=True)
class PartitionShare:
    """Share ``k`` of ``n`` (1-based) of the ticket partitions."""

    k: int
    n: int

    def __post_init__(self) -> None:
        """Refuse a share that is not one of ``n``, or more ledgers than partitions."""
        if not 1 <= self.n <= PARTITIONS:
            msg = f"the number of ledgers is 1-{PARTITIONS} (there are {PARTITIONS} partitions), not {self.n}"
            raise ValueError(msg)
        if not 1 <= self.k <= self.n:
            msg = f"the share is 1-{self.n} of {self.n}, not {self.k}"
            raise ValueError(msg)

    @classmethod
    def parse(cls, text: str) -> PartitionShare:
        """``"2/3"`` -> share 2 of 3; a clear :class:`ValueError` otherwise."""
        k, slash, n = text.partition("/")
        if not slash or not k.strip().isdigit() or not n.strip().isdigit():
            msg = f"a share is K/N, two whole numbers (e.g. 1/2), not {text!r}"
            raise ValueError(msg)
        return cls(int(k), int(n))

    @property
    def partitions(self) -> list[int]:
        """The partitions this share takes."""
        return [p for p in range(PARTITIONS) if p % self.n == self.k - 1]

    @property
    def name(self) -> str:
        """``K-of-N``: what a ledger of this share adds to its client id and source by default."""
        return f"{self.k}-of-{self.n}"

    def __str__(self) -> str:
        """As given on the command line."""
        return f"{self.k}/{self.n}"
