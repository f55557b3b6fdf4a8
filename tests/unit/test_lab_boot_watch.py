"""boot_watch: waiting for guest agents, resetting a guest that hangs, naming silent ones.

Time is a fake clock advanced by the watcher's own sleeps; a guest is a probe plus a console
file the test writes to, so each case plays one boot story exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from atp_notebook.errors import LabError
from atp_notebook.lab.boot_watch import BootingGuest, console_tail, wait_for_agents


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Story:
    """A guest whose agent answers from ``answers_at`` on (None: never), whose console
    grows while ``prints_until`` has not passed, and whose resets are recorded."""

    clock: FakeClock
    console: Path
    answers_at: float | None = None
    prints_until: float = 0.0
    answer_after_reset_s: float | None = None
    resets: list[float] = field(default_factory=list)
    fail_reset: bool = False

    def answers(self) -> bool:
        if self.clock.now < self.prints_until:
            with self.console.open("a") as f:
                f.write(f"line at {self.clock.now}\n")
            os.utime(self.console, ns=(0, int(self.clock.now * 1e9) + 1))
        return self.answers_at is not None and self.clock.now >= self.answers_at

    def reset(self) -> None:
        if self.fail_reset:
            raise OSError("QMP socket gone")
        self.resets.append(self.clock.now)
        if self.answer_after_reset_s is not None:
            self.answers_at = self.clock.now + self.answer_after_reset_s

    def guest(self, name: str, resettable: bool = True) -> BootingGuest:
        return BootingGuest(name, self.answers, self.console,
                            self.reset if resettable else None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def story(tmp_path: Path, clock: FakeClock, name: str, **kw: object) -> Story:
    console = tmp_path / f"{name}.log"
    console.write_text("atp-guest: init on kernel 6.1\n")
    return Story(clock, console, **kw)  # type: ignore[arg-type]


def run(guests: list[BootingGuest], clock: FakeClock, timeout: float = 180.0,
        **kw: float) -> None:
    wait_for_agents(guests, timeout, clock=clock, sleep=clock.sleep,
                    stall_s=kw.get("stall_s", 60.0), max_resets=int(kw.get("max_resets", 2)))


def test_a_guest_that_answers_is_never_reset(tmp_path: Path, clock: FakeClock) -> None:
    s = story(tmp_path, clock, "vm1", answers_at=15.0)
    run([s.guest("vm1")], clock)
    assert s.resets == []
    assert 15.0 <= clock.now < 16.0


def test_a_hung_guest_is_reset_after_a_silent_stall_and_then_boots(
    tmp_path: Path, clock: FakeClock
) -> None:
    # the CI failure this fixes: two guests answer, the third stays silent
    ok = story(tmp_path, clock, "vm1", answers_at=20.0)
    hung = story(tmp_path, clock, "vm2", answer_after_reset_s=20.0)
    run([ok.guest("vm1"), hung.guest("vm2")], clock)
    assert ok.resets == []
    assert len(hung.resets) == 1 and 60.0 <= hung.resets[0] < 61.0
    assert clock.now < 82.0  # booted 20 s after its reset, far inside the deadline


def test_a_slow_guest_that_keeps_printing_is_left_alone(tmp_path: Path, clock: FakeClock) -> None:
    s = story(tmp_path, clock, "vm1", answers_at=150.0, prints_until=150.0)
    run([s.guest("vm1")], clock)
    assert s.resets == []


def test_silence_counts_from_the_last_console_line(tmp_path: Path, clock: FakeClock) -> None:
    s = story(tmp_path, clock, "vm1", prints_until=30.0, answer_after_reset_s=5.0)
    run([s.guest("vm1")], clock)
    assert len(s.resets) == 1 and 89.0 <= s.resets[0] < 91.0


def test_resets_are_bounded_and_the_error_names_the_guest_its_resets_and_console(
    tmp_path: Path, clock: FakeClock
) -> None:
    ok = story(tmp_path, clock, "vm1", answers_at=10.0)
    dead = story(tmp_path, clock, "vm2")
    dead.console.write_text("atp-guest: hostname vm2\n\x1b[6natp-guest: starting qemu-ga\n")
    with pytest.raises(LabError) as caught:
        run([ok.guest("vm1"), dead.guest("vm2")], clock, timeout=400.0)
    assert len(dead.resets) == 2  # MAX_RESETS, not one per stall forever
    err = caught.value
    assert "guest agent of vm2 did not answer within 400 s" in str(err)
    assert "vm1" not in str(err)
    hint = err.hint or ""
    assert "reset 2 time(s)" in hint
    assert "atp-guest: hostname vm2 | [6natp-guest: starting qemu-ga" in hint
    assert "\x1b" not in hint
    assert str(dead.console) in hint


def test_a_guest_without_reset_waits_for_the_deadline(tmp_path: Path, clock: FakeClock) -> None:
    s = story(tmp_path, clock, "sasl")
    with pytest.raises(LabError, match="guest agent of sasl did not answer within 100 s"):
        run([s.guest("sasl", resettable=False)], clock, timeout=100.0)
    assert s.resets == []
    assert 100.0 <= clock.now < 101.0


def test_a_failing_reset_is_logged_and_the_deadline_still_decides(
    tmp_path: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    s = story(tmp_path, clock, "vm1", fail_reset=True)
    with pytest.raises(LabError, match="vm1 did not answer within 150 s"):
        run([s.guest("vm1")], clock, timeout=150.0)
    assert "vm1: reset failed: QMP socket gone" in caplog.text


@pytest.mark.parametrize(
    ("content", "tail"),
    [
        (b"", ""),
        (b"\n\n", ""),
        (b"a\nb\nc\nd\n", "b | c | d"),
        (b"one\r\n\x1b[6ntwo\xff\n", "one | [6ntwo\ufffd"),
    ],
)
def test_console_tail(tmp_path: Path, content: bytes, tail: str) -> None:
    path = tmp_path / "console.log"
    path.write_bytes(content)
    assert console_tail(path) == tail


def test_console_tail_of_a_missing_log_is_empty(tmp_path: Path) -> None:
    assert console_tail(tmp_path / "absent.log") == ""

