"""Answers between an actor and the driver's cache, so that a killed actor costs only its calls
in flight.

Ray re-runs the whole batch of an actor that dies, and the new actor would send every call of it
again, including those already answered but not yet returned (a batch returns when all of its
calls are answered).  Each actor therefore hands every answer to this ledger as it comes (a
small Ray actor on the driver's node); a re-run batch takes its answers from here and sends only
the rest.  The driver forgets a batch's answers once its cache holds them, so the ledger holds
at most the batches running, not the run.
"""

from __future__ import annotations

__all__ = ["AnswerLedger"]


class AnswerLedger:
    """Made a Ray actor by the driver (``ray.remote(num_cpus=0)``); plain data in, plain data out."""

    def __init__(self) -> None:
        self.records: dict[str, str] = {}

    async def put(self, keys: list[str], records: list[str]) -> None:
        self.records.update(zip(keys, records, strict=True))

    async def known(self, keys: list[str]) -> dict[str, str]:
        """The answers already given for these keys (kept until the driver forgets them: the
        batch that asks may die too)."""
        return {k: self.records[k] for k in keys if k in self.records}

    async def forget(self, keys: list[str]) -> None:
        for key in keys:
            self.records.pop(key, None)

    async def size(self) -> int:
        return len(self.records)
