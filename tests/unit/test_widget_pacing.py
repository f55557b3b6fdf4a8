"""pacing.py: when the widget sends a frame and how, fed events and clock readings."""

from __future__ import annotations

import pytest

from atp_notebook.errors import InvalidArgument
from atp_notebook.notebook.widget.pacing import FramePacer, FramePlan
from atp_notebook.spice.display.surfaces import Box

SIZE = (720, 400)
WHOLE = Box(0, 0, 720, 400)
BIG = Box(0, 0, 400, 300)  # more than SMALL_AREA: goes as JPEG while moving
SMALL = Box(8, 16, 16, 32)  # a character


def attached(**options: float) -> FramePacer:
    """A pacer with one view that has painted the first (whole, exact) frame."""
    pacer = FramePacer(**options)  # type: ignore[arg-type]
    pacer.damage((), SIZE, now=0.0)
    pacer.attach(now=0.0)
    first = pacer.next_frame(0.0)
    assert first == FramePlan(1, (WHOLE,), True, SIZE)
    pacer.acknowledged(1, now=0.0)
    return pacer


def test_nothing_is_sent_without_a_view() -> None:
    pacer = FramePacer()
    pacer.damage([BIG], SIZE, now=0.0)
    assert pacer.wait(0.0) is None
    assert pacer.next_frame(10.0) is None
    assert pacer.sent == 0


def test_a_view_that_attaches_gets_the_whole_screen_exactly() -> None:
    pacer = attached()
    pacer.damage([SMALL], SIZE, now=1.0)
    pacer.attach(now=1.0)  # a second view
    assert pacer.next_frame(1.0) == FramePlan(2, (WHOLE,), True, SIZE)


def test_a_small_change_goes_lossless_at_once() -> None:
    pacer = attached()
    pacer.damage([SMALL], SIZE, now=1.0)
    assert pacer.next_frame(1.0) == FramePlan(2, (SMALL,), True, SIZE)
    pacer.acknowledged(2, now=1.01)
    assert pacer.wait(2.0) is None  # nothing left to settle


def test_a_big_change_goes_as_jpeg_then_exactly_once_the_screen_is_still() -> None:
    pacer = attached(still_s=0.3)
    pacer.damage([BIG], SIZE, now=1.0)
    assert pacer.next_frame(1.0) == FramePlan(2, (BIG,), False, SIZE)
    pacer.acknowledged(2, now=1.02)
    assert pacer.wait(1.1) == pytest.approx(0.2)
    assert pacer.next_frame(1.1) is None
    assert pacer.next_frame(1.3) == FramePlan(3, (BIG,), True, SIZE)
    pacer.acknowledged(3, now=1.31)
    assert pacer.wait(5.0) is None


def test_damage_while_moving_postpones_the_exact_frame() -> None:
    pacer = attached(still_s=0.3, fps=10)
    pacer.damage([BIG], SIZE, now=1.0)
    assert pacer.next_frame(1.0) is not None
    pacer.acknowledged(2, now=1.0)
    pacer.damage([WHOLE], SIZE, now=1.05)
    assert pacer.wait(1.05) == pytest.approx(0.05)  # the fps cap: 0.1 s between frames
    plan = pacer.next_frame(1.1)
    assert plan == FramePlan(3, (WHOLE,), False, SIZE)
    pacer.acknowledged(3, now=1.1)
    assert pacer.next_frame(1.3) is None  # 0.25 s after the last damage
    assert pacer.next_frame(1.35) == FramePlan(4, (BIG, WHOLE), True, SIZE)


def test_an_exact_copy_settles_what_it_covers() -> None:
    pacer = attached()
    pacer.damage([BIG], SIZE, now=1.0)
    pacer.next_frame(1.0)
    pacer.acknowledged(2, now=1.0)
    pacer.damage([WHOLE], SIZE, now=1.1)
    pacer.attach(now=1.1)  # a new view: the whole screen, exactly
    assert pacer.next_frame(1.2) == FramePlan(3, (WHOLE,), True, SIZE)
    pacer.acknowledged(3, now=1.2)
    assert pacer.wait(3.0) is None  # BIG was covered: no second exact frame


def test_at_most_max_in_flight_frames_wait_for_acknowledgement() -> None:
    pacer = attached(fps=1000, max_in_flight=2, stall_s=1.0)
    for n, now in ((2, 1.0), (3, 1.01)):
        pacer.damage([SMALL], SIZE, now=now)
        assert pacer.next_frame(now) is not None
        assert pacer.sent == n
    pacer.damage([SMALL], SIZE, now=1.02)
    assert pacer.in_flight == 2
    assert pacer.next_frame(1.02) is None
    pacer.acknowledged(2, now=1.05)
    assert pacer.next_frame(1.05) == FramePlan(4, (SMALL,), True, SIZE)


def test_frames_go_on_blind_when_acknowledgements_stall() -> None:
    # a cell blocking the kernel holds the acknowledgements back: frames go on, slowly
    pacer = attached(fps=30, max_in_flight=1, stall_s=1.0, blind_fps=4, blind_limit_s=30)
    pacer.damage([SMALL], SIZE, now=1.0)
    assert pacer.next_frame(1.0) is not None
    pacer.damage([SMALL], SIZE, now=1.1)
    assert pacer.wait(1.1) == pytest.approx(0.9)
    assert pacer.next_frame(2.0) is not None  # stalled for 1 s
    pacer.damage([SMALL], SIZE, now=2.0)
    assert pacer.next_frame(2.1) is None  # blind: 4 fps at most
    assert pacer.next_frame(3.0) is not None


def test_nothing_goes_once_no_view_spoke_for_the_blind_limit() -> None:
    # a closed browser tab says nothing: the encoding stops
    pacer = attached(max_in_flight=1, stall_s=1.0, blind_limit_s=30)
    pacer.damage([SMALL], SIZE, now=1.0)
    assert pacer.next_frame(1.0) is not None
    pacer.damage([SMALL], SIZE, now=40.0)
    assert pacer.wait(40.0) is None
    assert pacer.next_frame(40.0) is None
    pacer.acknowledged(2, now=41.0)  # it was only slow
    assert pacer.next_frame(41.0) is not None


def test_a_detached_last_view_stops_the_frames() -> None:
    pacer = attached()
    pacer.detach(now=1.0)
    pacer.damage([BIG], SIZE, now=1.0)
    assert pacer.views == 0
    assert pacer.next_frame(2.0) is None


def test_a_new_size_sends_the_whole_new_screen_exactly() -> None:
    pacer = attached()
    pacer.damage([BIG], (1024, 768), now=1.0)
    assert pacer.next_frame(1.0) == FramePlan(2, (Box(0, 0, 1024, 768),), True, (1024, 768))


def test_acknowledgements_of_unknown_or_old_frames_change_nothing() -> None:
    pacer = attached()
    pacer.acknowledged(99, now=1.0)
    pacer.acknowledged(0, now=1.0)
    assert pacer.acked == 1


def test_a_flood_of_damage_collapses_to_its_bounding_box() -> None:
    pacer = attached()
    pacer.damage([Box(x, 0, x + 1, 1) for x in range(300)], SIZE, now=1.0)
    plan = pacer.next_frame(1.0)
    assert plan is not None
    assert plan.boxes == (Box(0, 0, 300, 1),)


@pytest.mark.parametrize("options", [{"fps": 0}, {"max_in_flight": 0}, {"still_s": -1},
                                     {"blind_fps": 0}])
def test_bad_options_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(InvalidArgument, match="FramePacer"):
        FramePacer(**options)  # type: ignore[arg-type]


def test_a_display_by_the_kernel_counts_as_a_view_until_its_hello() -> None:
    # the view's hello waits for the busy cell that follows the display to end
    pacer = FramePacer(max_in_flight=1, stall_s=1.0, blind_fps=10, blind_limit_s=30)
    pacer.damage((), SIZE, now=0.0)
    pacer.displayed(now=0.0)
    assert pacer.next_frame(0.0) == FramePlan(1, (WHOLE,), True, SIZE)
    pacer.damage([SMALL], SIZE, now=0.5)
    assert pacer.next_frame(0.5) is None  # the first frame is not acknowledged yet
    assert pacer.next_frame(1.0) is not None  # blind
    pacer.attach(now=5.0)  # the hello, once the cell ended
    assert (pacer.views, pacer.displays) == (1, 0)
    plan = pacer.next_frame(5.0)
    assert plan is not None and plan.boxes == (WHOLE,)


def test_a_display_no_view_ever_shows_stops_the_frames_after_the_blind_limit() -> None:
    # e.g. a notebook run by nbval, without a browser
    pacer = FramePacer(max_in_flight=2, stall_s=1.0, blind_limit_s=30)
    pacer.damage((), SIZE, now=0.0)
    pacer.displayed(now=0.0)
    for now in (0.0, 0.1):
        pacer.damage([SMALL], SIZE, now=now)
        assert pacer.next_frame(now) is not None
    pacer.damage([SMALL], SIZE, now=31.0)
    assert pacer.next_frame(31.0) is None


def test_with_acknowledgements_on_the_frame_socket_nothing_goes_blind() -> None:
    # the socket's acknowledgements pass a blocked shell: a silent browser is a slow one
    pacer = attached(fps=30, max_in_flight=1, stall_s=1.0, blind_fps=4, blind_limit_s=30)
    pacer.direct_acks = True
    pacer.damage([SMALL], SIZE, now=1.0)
    assert pacer.next_frame(1.0) is not None
    pacer.damage([SMALL], SIZE, now=1.1)
    assert pacer.wait(1.1) is None
    assert pacer.next_frame(5.0) is None
    pacer.acknowledged(2, now=5.0)
    assert pacer.next_frame(5.0) is not None


def test_a_resync_sends_the_whole_screen_exactly_and_forgets_what_was_in_flight() -> None:
    pacer = attached(fps=30, max_in_flight=2)
    pacer.damage([BIG], SIZE, now=1.0)
    assert pacer.next_frame(1.0) == FramePlan(2, (BIG,), False, SIZE)
    pacer.damage([BIG], SIZE, now=1.1)
    assert pacer.next_frame(1.1) is not None
    assert pacer.in_flight == 2
    pacer.resync(now=1.2)  # a page's frames moved to its socket: those two never come back
    assert pacer.in_flight == 0
    assert pacer.next_frame(1.2) == FramePlan(4, (WHOLE,), True, SIZE)
