"""How fast mail arrives at all the serving processes of one host (`serve --processes N`).

Ticket creation steps aside while senders wait for their 250 and mail comes faster than it
becomes tickets. Each process used to judge that from its own intake alone; but the kernel
spreads connections over the processes unevenly (eight senders can land seven and one), and
the process that saw only a trickle made tickets at full speed on the very cores the busy
one needed: in half the runs of `bench/ingest.py --processes 2` it made 800-900 tickets
during the burst and acceptance fell to 40-48% of a bare server, against 62-77% otherwise.
Judged by the host's rate, eight runs of eight accepted 71-87%.

So each process's intake publishes its arrival rate in a slot of a small file that every
process of the host maps into memory, and reads the sum. A slot not written for a while
counts as nothing: its process took no mail then (or died)."""

from __future__ import annotations

import logging
import mmap
import os
import struct
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "serve-arrivals"  # in the data directory
_SLOT = struct.Struct("<dd")  # written at (monotonic seconds: one clock for the whole host), messages per second


class HostArrivals:
    """One process's view of the shared file: it writes its own slot and reads them all."""

    def __init__(self, path: Path, slot: int) -> None:
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, 0)
        finally:
            os.close(fd)
        self.count = len(self._map) // _SLOT.size
        if not 0 <= slot < self.count:
            self._map.close()
            raise ValueError(f"slot {slot} of {self.count}")
        self._offset = slot * _SLOT.size

    @staticmethod
    def create(path: Path, count: int) -> None:
        """The file for `count` processes, every slot empty (by the parent, before they start)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(bytes(_SLOT.size * count))

    def publish(self, now: float, rate: float) -> None:
        _SLOT.pack_into(self._map, self._offset, now, rate)

    def total(self, now: float, within: float) -> float:
        """Messages per second over every process whose slot was written in the last `within`
        seconds. The two numbers of a slot are not written atomically: a reader can pair a
        new time with the previous rate, a difference of one group commit."""
        return sum(rate for written, rate in _SLOT.iter_unpack(self._map) if now - written <= within)

    def close(self) -> None:
        self._map.close()


def open_slot(path: Path, slot: int) -> HostArrivals | None:
    """This process's slot, or None (each process then judges by its own mail, as a single
    one does) when the file cannot be used: a pacing aid must not keep a front from serving."""
    try:
        return HostArrivals(path, slot)
    except (OSError, ValueError) as exc:
        log.warning("the host's arrivals file %s (slot %d) cannot be used: %s; "
                    "this process paces ticket creation by its own mail only", path, slot, exc)
        return None
