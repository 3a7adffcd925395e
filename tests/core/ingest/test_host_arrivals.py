"""The arrival rate the serving processes of one host share (`serve --processes N`): what a
process with no mail of its own sees of the mail its sibling takes."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.db import Database
from core.ingest.host_arrivals import HostArrivals, open_slot
from core.ingest.intake import RATE_WINDOW, Intake, Submission


def publish_elsewhere(path: Path, slot: int, rate: float, age: float = 0.0) -> None:
    """Another process writes its slot, as a sibling's intake does after a commit."""
    code = ("import sys, time; from pathlib import Path; from core.ingest.host_arrivals import HostArrivals; "
            "h = HostArrivals(Path(sys.argv[1]), int(sys.argv[2])); "
            "h.publish(time.monotonic() - float(sys.argv[4]), float(sys.argv[3])); h.close()")
    subprocess.run([sys.executable, "-c", code, str(path), str(slot), str(rate), str(age)], check=True,
                   cwd=Path(__file__).resolve().parents[3])


def test_a_sibling_process_rate_counts_while_fresh(tmp_path: Path) -> None:
    path = tmp_path / "arrivals"
    HostArrivals.create(path, 3)
    mine = HostArrivals(path, 0)
    try:
        assert mine.count == 3
        assert mine.total(time.monotonic(), RATE_WINDOW) == 0  # nobody has written yet
        mine.publish(time.monotonic(), 100.0)
        publish_elsewhere(path, 2, 900.0)
        assert mine.total(time.monotonic(), 5.0) == 1000.0
        publish_elsewhere(path, 2, 900.0, age=10.0)  # took no mail for ten seconds (or died)
        assert mine.total(time.monotonic(), 5.0) == 100.0
    finally:
        mine.close()


def test_a_slot_outside_the_file_is_refused(tmp_path: Path) -> None:
    HostArrivals.create(tmp_path / "arrivals", 2)
    with pytest.raises(ValueError):
        HostArrivals(tmp_path / "arrivals", 2)


def test_a_process_whose_file_is_missing_paces_by_its_own_mail(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert open_slot(tmp_path / "no-such-file", 0) is None
    assert "cannot be used" in caplog.text
    HostArrivals.create(tmp_path / "arrivals", 1)
    found = open_slot(tmp_path / "arrivals", 0)
    assert found is not None and found.count == 1
    found.close()


async def test_an_intake_without_mail_sees_the_burst_its_sibling_takes(db: Database, tmp_path: Path) -> None:
    """The kernel can hand nearly every sender to one process: the other's ticket creation
    must still know senders are waiting on this host."""
    path = tmp_path / "arrivals"
    HostArrivals.create(path, 2)
    busy, quiet = Intake(db, host=HostArrivals(path, 0)), Intake(db, host=HostArrivals(path, 1))
    await busy.start()
    await quiet.start()
    try:
        await asyncio.gather(*(
            busy.submit(Submission(mail_from="burst@customer.test", rcpt_tos=["support@example.com"],
                                   raw=f"Subject: burst {i}\r\n\r\nbody\r\n".encode()))
            for i in range(20)
        ))
        seen = quiet.host_arrival_rate()  # at once: a slot counts for RATE_WINDOW after its commit
        assert quiet.arrival_rate() == 0
        assert seen >= busy.arrival_rate() > 0
        assert quiet.processes == 2
    finally:
        await busy.stop()
        await quiet.stop()
        for intake in (busy, quiet):
            assert intake.host is not None
            intake.host.close()
