"""The display widget's pointer, special keys, snapshot and states in a real browser:
JupyterLab on loopback, Debian's chromium, the lab's atp-vm1.

The notebook's kernel is the VM's Spice client; its last cell is an async loop that runs
steps the test hands it in files (so the kernel keeps hearing the widget's messages between
them). The test process reads the guest through the agent (libvirt, no Spice): the pointer
in the guest's own evdev devices, files the typed commands wrote. A takeover is this
process's own Spice client connecting to the VM.

Run under the lab lock: ``flock /tmp/atp-lab.lock .venv/bin/python -m pytest tests/browser``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page

from atp_notebook.lab.paths import LabPaths
from atp_notebook.session import Session, Vm, connect
from tests.browser.conftest import JupyterLab
from tests.integration.test_spice_mouse import (
    BTN_LEFT,
    BTN_RIGHT,
    EV_ABS,
    EV_KEY,
    EV_REL,
    TABLET,
    InputEvent,
    Recorder,
    buttons,
    device,
    expected,
    last_abs,
)
from tests.integration.waiting import wait_until

VM = "atp-vm1"
START_TIMEOUT_S = 180.0
STEP_TIMEOUT_S = 120.0
REL_WHEEL = 8
TAKEN_OVER = "taken over — click to reconnect"

# the VGA text console's cursor blinks: hidden while the test runs, so the screen is still
SETUP = f"""\
import asyncio, json, pathlib, textwrap, threading, time, traceback
from atp_notebook import connect
from atp_notebook.notebook.widget import DisplayWidget
from atp_notebook.notebook.widget.frame_socket import frame_server
OUT = pathlib.Path("out")
OUT.mkdir(exist_ok=True)
vm = connect().vm({VM!r})
vm.wait_for_agent(timeout=120)
vm.exec(["/bin/sh", "-c", "printf '\\\\033[?25l' > /dev/tty1"])
screen = DisplayWidget(vm)
screen"""

SECOND = """\
screen2 = DisplayWidget(vm)
screen2"""

# runs the steps the test writes (out/step-N.py: the body of an async function) until
# "stop"; each one's result (or traceback) goes to out/result-N.json
STEPS = """\
async def _steps():
    n, deadline = 0, time.monotonic() + 900
    while time.monotonic() < deadline:
        step = OUT / f"step-{n}.py"
        if not step.exists():
            await asyncio.sleep(0.05)
            continue
        source = step.read_text()
        if source == "stop":
            return
        scope = {}
        try:
            exec("async def _step():\\n" + textwrap.indent(source, "    "), globals(), scope)
            result = {"ok": await scope["_step"]()}
        except Exception:
            result = {"error": traceback.format_exc()}
        (OUT / f"result-{n}.json").write_text(json.dumps(result, default=str))
        n += 1
await _steps()
vm.exec(["/bin/sh", "-c", "printf '\\\\033[?25h' > /dev/tty1"])"""

CANVAS = ".atp-display canvas"
# a guest pixel's centre in page coordinates, on widget view ``i``
PAGE_XY = """([gx, gy, i]) => {
  const c = document.querySelectorAll(".atp-display canvas")[i];
  const r = c.getBoundingClientRect();
  const w = r.width - 4, h = r.height - 4;  // the 2-pixel focus border
  return [r.left + 2 + ((gx + 0.5) * w) / c.width, r.top + 2 + ((gy + 0.5) * h) / c.height];
}"""
READ_CANVAS = """(i) => {
  const canvas = document.querySelectorAll(".atp-display canvas")[i];
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let text = "";
  for (let k = 0; k < data.length; k += 0x8000) {
    text += String.fromCharCode.apply(null, data.subarray(k, k + 0x8000));
  }
  return {width: canvas.width, height: canvas.height, rgba: btoa(text)};
}"""
STATUS = "(i) => document.querySelectorAll('.atp-display')[i]?.dataset.status"
ERROR_OUTPUT = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"


class LiveNotebook:
    """A notebook showing the widget(s), its kernel running steps, a page and a directory
    for pictures."""

    def __init__(self, lab: JupyterLab, page: Page, pictures: Path) -> None:
        self.lab = lab
        self.page = page
        self.pictures = pictures
        self.out = lab.root / "out"
        self._next = 0

    def step(self, source: str, timeout: float = STEP_TIMEOUT_S) -> Any:
        """Run ``source`` (an async function's body; ``return`` a JSON-able value) in the
        kernel; its result."""
        n = self._next
        self._next += 1
        temporary = self.out / f"step-{n}.tmp"
        temporary.write_text(source)
        temporary.rename(self.out / f"step-{n}.py")  # whole, or not at all
        result = self.out / f"result-{n}.json"
        deadline = time.monotonic() + timeout
        while not result.exists():
            self.check_no_error()
            if time.monotonic() > deadline:
                self.fail(f"the kernel did not run step {n} within {timeout:g} s:\n{source}")
            time.sleep(0.1)
        time.sleep(0.05)
        answer = json.loads(result.read_text())
        if "error" in answer:
            self.fail(f"step {n} failed in the kernel:\n{answer['error']}")
        return answer["ok"]

    def status(self, view: int = 0) -> str | None:
        found = self.page.evaluate(STATUS, view)
        return None if found is None else str(found)

    def wait_status(self, status: str, view: int = 0, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.status(view) != status:
            if time.monotonic() > deadline:
                self.fail(f"view {view} says {self.status(view)!r}, not {status!r}")
            time.sleep(0.1)

    def page_xy(self, x: int, y: int, view: int = 0) -> tuple[float, float]:
        got = self.page.evaluate(PAGE_XY, [x, y, view])
        return float(got[0]), float(got[1])

    def canvas(self, view: int = 0) -> Image.Image:
        got = self.page.evaluate(READ_CANVAS, view)
        rgba = base64.b64decode(got["rgba"])
        return Image.frombytes("RGBA", (got["width"], got["height"]), rgba).convert("RGB")

    def screenshot(self, name: str) -> Image.Image:
        """vm.screenshot() once the screen is still, taken by the kernel."""
        self.step("await vm.display.wait_still_async(1.5, timeout=60)\n"
                  f"vm.screenshot().save(OUT / {name!r})")
        return Image.open(self.out / name).convert("RGB")

    def wait_canvas_equals(self, reference: Image.Image, view: int = 0,
                           timeout: float = 30.0) -> None:
        """Until the canvas shows ``reference`` exactly (the last, lossless frame may still
        be on its way)."""
        deadline = time.monotonic() + timeout
        while True:
            shown = self.canvas(view)
            if shown.size == reference.size:
                a = np.asarray(shown, dtype=np.int16)
                differing = int(np.count_nonzero((a != np.asarray(reference)).any(axis=2)))
                if differing == 0:
                    return
            else:
                differing = -1
            if time.monotonic() > deadline:
                shown.save(self.pictures / f"canvas-{view}.png")
                reference.save(self.pictures / "reference.png")
                self.fail(f"view {view}: {differing} pixels differ from vm.screenshot() "
                          f"(sizes {shown.size}, {reference.size}); pictures in "
                          f"{self.pictures}")
            time.sleep(0.2)

    def check_no_error(self) -> None:
        if not self.page.is_closed() and self.page.locator(ERROR_OUTPUT).count():
            self.fail("a cell failed")

    def fail(self, message: str) -> None:
        text = "(the tab is closed)"
        if not self.page.is_closed():
            self.page.screenshot(path=str(self.pictures / "failure.png"))
            text = self.page.locator(".jp-Notebook").inner_text(timeout=5_000)
        pytest.fail(f"{message}\n--- the notebook ({self.pictures / 'failure.png'}):\n"
                    f"{text[-3000:]}\n--- JupyterLab's log:\n{self.lab.log_tail(20)}",
                    pytrace=False)


def _kernels(lab: JupyterLab, method: str = "GET", kernel: str = "") -> Any:
    request = urllib.request.Request(lab.url(f"api/kernels{kernel}"), method=method)
    with urllib.request.urlopen(request, timeout=30) as reply:  # loopback only
        body = reply.read()
    return json.loads(body) if body else None


@contextlib.contextmanager
def open_notebook(lab: JupyterLab, page: Page, tmp_path: Path, cells: list[str],
                  widgets: int = 1, steps_run: bool = True) -> Iterator[LiveNotebook]:
    """Run ``cells`` in a new notebook until its ``widgets`` painted (and, if
    ``steps_run``, its last cell, STEPS, answers); its kernel is shut down at the end."""
    for old in (lab.root / "out").glob("*"):
        old.unlink()
    name = f"{tmp_path.name}.ipynb"
    lab.write_notebook(name, cells)
    # a workspace of its own: JupyterLab would reopen the earlier tests' notebooks
    page.goto(lab.url(f"lab/workspaces/{tmp_path.name}/tree/{name}"))
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    notebook = LiveNotebook(lab, page, tmp_path)
    try:
        with explained(notebook):
            wait_for_widgets(page, widgets)
        notebook.check_no_error()
        if steps_run:
            notebook.step("return 1")  # the steps cell runs
        yield notebook
        notebook.step("return 1")  # the kernel still answers
    finally:
        (lab.root / "out" / f"step-{notebook._next}.py").write_text("stop")
        # one Spice client per VM: this notebook's kernel must not outlive the test
        for kernel in _kernels(lab):
            _kernels(lab, "DELETE", f"/{kernel['id']}")


@contextlib.contextmanager
def explained(notebook: LiveNotebook) -> Iterator[None]:
    try:
        yield
    # Playwright's timeouts and our own waits' pytest.fail: the page and the log say why
    except (Exception, pytest.fail.Exception) as exc:
        notebook.fail(str(exc))


def wait_for_widgets(page: Page, count: int) -> None:
    page.wait_for_function(
        f"""() => [...document.querySelectorAll("{CANVAS}")].length >= {count}
          && [...document.querySelectorAll("{CANVAS}")].every(
               (c) => Number(c.dataset.painted) > 0)
          || document.querySelector("{ERROR_OUTPUT}") !== null""",
        timeout=START_TIMEOUT_S * 1000)


@pytest.fixture
def notebook(jupyter_lab: JupyterLab, page: Page, tmp_path: Path) -> Iterator[LiveNotebook]:
    with open_notebook(jupyter_lab, page, tmp_path, [SETUP, STEPS]) as notebook:
        yield notebook


@pytest.fixture
def tester(session: Session) -> Vm:
    """atp-vm1 for this process: the guest agent and QMP only (no Spice: the notebook is
    the VM's Spice client)."""
    return session.vm(VM)


def presses(events: list[InputEvent], code: int) -> list[int]:
    return [e.value for e in events if (e.type, e.code) == (EV_KEY, code)]


def test_clicks_drags_and_the_wheel_land_in_the_guests_evdev(notebook: LiveNotebook,
                                                             tester: Vm) -> None:
    page = notebook.page
    width, height = notebook.step("return list(vm.screenshot().size)")
    size = (int(width), int(height))
    assert size == (720, 400), size
    page.locator(CANVAS).scroll_into_view_if_needed()
    tablet = device(tester, TABLET)
    page.mouse.move(*notebook.page_xy(333, 222))  # elsewhere first: evdev drops repeats
    time.sleep(0.5)

    with Recorder(tester, tablet) as recorder:
        page.mouse.click(*notebook.page_xy(100, 50))
        events = recorder.wait_for(lambda ev: (BTN_LEFT, 0) in buttons(ev), "the click")
    assert buttons(events) == [(BTN_LEFT, 1), (BTN_LEFT, 0)]
    first = next(i for i, e in enumerate(events) if e.type == EV_KEY)
    assert last_abs(events[:first]) == expected(100, 50, size)

    # a drag: pressed at one place, moved with the button held, released at another
    start, end = (200, 120), (420, 300)
    with Recorder(tester, tablet) as recorder:
        page.mouse.move(*notebook.page_xy(*start))
        page.mouse.down()
        for i in range(1, 13):  # paced: the view sends a move at most every 20 ms
            page.mouse.move(*notebook.page_xy(start[0] + (end[0] - start[0]) * i // 12,
                                              start[1] + (end[1] - start[1]) * i // 12))
            time.sleep(0.03)
        page.mouse.up()
        events = recorder.wait_for(lambda ev: (BTN_LEFT, 0) in buttons(ev), "the release")
    pressed = next(i for i, e in enumerate(events) if (e.type, e.code, e.value) ==
                   (EV_KEY, BTN_LEFT, 1))
    released = next(i for i, e in enumerate(events) if (e.type, e.code, e.value) ==
                    (EV_KEY, BTN_LEFT, 0))
    assert last_abs(events[:pressed]) == expected(*start, size)
    held_x = {e.value for e in events[pressed:released] if (e.type, e.code) == (EV_ABS, 0)}
    assert len(held_x) >= 3, events  # it went through places while held: a drag
    assert last_abs(events[:released]) == expected(*end, size)

    with Recorder(tester, tablet) as recorder:
        page.mouse.click(*notebook.page_xy(719, 399), button="right")
        page.mouse.wheel(0, 100)  # Chromium's notch down: two of ours
        page.mouse.wheel(0, -150)  # three up
        events = recorder.wait_for(
            lambda ev: len([e for e in ev if (e.type, e.code) == (EV_REL, REL_WHEEL)]) >= 5,
            "five wheel notches")
    assert presses(events, BTN_RIGHT) == [1, 0]
    right = next(i for i, e in enumerate(events) if (e.type, e.code) == (EV_KEY, BTN_RIGHT))
    assert last_abs(events[:right]) == expected(719, 399, size)  # the click: exact
    # the wheel's own position comes last: Chromium gives wheel events whole-pixel client
    # coordinates (pointer events fractional ones), so where the canvas sits at a
    # fractional offset (seen: top 321.0625) the wheel lands a pixel up or left of the click
    assert last_abs(events) in {expected(x, y, size) for x in (718, 719) for y in (398, 399)}
    wheel = [e.value for e in events if (e.type, e.code) == (EV_REL, REL_WHEEL)]
    assert wheel == [-1, -1, 1, 1, 1]


def test_special_keys_and_the_snapshot(notebook: LiveNotebook, tester: Vm,
                                       tmp_path: Path) -> None:
    page = notebook.page
    page.locator(CANVAS).click()
    for key in ["Enter", *"sleep", "Space", *"317", "Enter"]:
        page.keyboard.press(key)
    running = "ps | grep -c '[s]leep 317'"
    wait_until(lambda: tester.exec(["/bin/sh", "-c", running]).stdout.strip() == b"1",
               "sleep 317 in the guest", timeout=30, interval=0.3)
    page.get_by_role("button", name="Ctrl-C", exact=True).click()
    wait_until(lambda: tester.exec(["/bin/sh", "-c", running]).stdout.strip() == b"0",
               "Ctrl-C to end sleep 317", timeout=30, interval=0.3)
    assert page.evaluate("document.activeElement?.tagName") == "CANVAS"  # focus kept

    reference = notebook.screenshot("before-snapshot.png")
    with page.expect_download(timeout=30_000) as caught:
        page.get_by_role("button", name="Snapshot", exact=True).click()
    download = caught.value
    assert download.suggested_filename.startswith(f"{VM}-")
    assert download.suggested_filename.endswith(".png")
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    snapshot = Image.open(saved).convert("RGB")
    assert snapshot.size == reference.size
    assert np.array_equal(np.asarray(snapshot), np.asarray(reference)), saved


def test_a_takeover_is_shown_and_a_click_reconnects(notebook: LiveNotebook,
                                                    lab_paths: LabPaths) -> None:
    page = notebook.page
    notebook.wait_status("live")
    other = connect(lab_paths.config_file)  # a second Spice client of the VM
    try:
        other.vm(VM).press("shift")  # its link makes the server drop the notebook's
        notebook.wait_status(TAKEN_OVER)
        page.screenshot(path=str(notebook.pictures / "taken-over.png"))
        assert page.locator(".atp-display-overlay").inner_text() == TAKEN_OVER
        sent = notebook.step("return screen.stats.frames")
        other.vm(VM).type("echo while-taken-over\n")  # the screen changes meanwhile
        time.sleep(1.0)
        state = notebook.step(
            "return [screen.stats.frames, screen._link.streaming, "
            "len(vm.spice_input.spice.listeners)]")
        assert state[:2] == [sent, False]  # nothing encoded while taken over
    finally:
        other.close()
    page.locator(".atp-display-overlay").click()
    notebook.wait_status("live")
    page.screenshot(path=str(notebook.pictures / "reconnected.png"))
    notebook.wait_canvas_equals(notebook.screenshot("after-reconnect.png"))
    # still one Spice-event listener per widget: the reconnect added none
    assert notebook.step("return len(vm.spice_input.spice.listeners)") == state[2]


def test_two_widgets_of_one_vm_both_update_and_take_input(jupyter_lab: JupyterLab,
                                                          page: Page, tmp_path: Path,
                                                          tester: Vm) -> None:
    with open_notebook(jupyter_lab, page, tmp_path, [SETUP, SECOND, STEPS],
                       widgets=2) as notebook:
        tester.exec(["/bin/rm", "-f", "/tmp/two-widgets"])
        canvases = page.locator(CANVAS)
        assert canvases.count() == 2
        # keys typed into one view, then the other: one line in the guest, in order
        canvases.nth(0).click()
        for key in ["Enter", *"echo", "Space", *"ab"]:
            page.keyboard.press(key)
        canvases.nth(1).click()
        for key in [*"cd", "Space", "Shift+Period", "Slash", *"tmp", "Slash", *"two",
                    "Minus", *"widgets", "Enter"]:
            page.keyboard.press(key)
        wait_until(lambda: tester.exec(["/bin/cat", "/tmp/two-widgets"]).stdout == b"abcd\n",
                   "/tmp/two-widgets with abcd", timeout=30, interval=0.3)
        reference = notebook.screenshot("two-widgets.png")
        notebook.wait_canvas_equals(reference, view=0)
        notebook.wait_canvas_equals(reference, view=1)
        frames = notebook.step("return [screen.stats.frames, screen2.stats.frames]")
        assert min(frames) >= 2, frames


def test_a_widget_closed_mid_stream_leaves_no_thread_or_listener(notebook: LiveNotebook
                                                                 ) -> None:
    counts = """\
return {"threads": sorted(t.name for t in threading.enumerate()
                          if t.name.startswith("atp-widget")),
        "spice": len(vm.spice_input.spice.listeners),
        "frames": len(vm.spice_input.spice.displays.frame_listeners(0)),
        "sockets": frame_server().widgets}"""
    before = notebook.step(counts)
    assert before["spice"] >= 1 and before["frames"] >= 1 and before["threads"]
    assert before["sockets"] >= 1
    # the console scrolls (frames in flight to the browser) while the widget closes; for a
    # few seconds only, and stopped at the end either way: a screen still moving would
    # fail the tests after this one
    scroller = notebook.step("""\
changed = asyncio.ensure_future(vm.display.wait_for_change_async(timeout=30))
# in the background, its output away from the agent's pipes: the agent answers at once
started = await vm.exec_async(["/bin/sh", "-c", "for i in $(seq 1 200); do echo scrolling "
                               "$i; sleep 0.05; done > /dev/tty1 2>&1 < /dev/null & echo $!"])
await changed
return int(started.stdout)""")
    try:
        closed = notebook.step("""\
await asyncio.sleep(0.3)
sent = screen.stats.frames
screen.close()
screen._thread.join(15)
await asyncio.sleep(1.0)
return [sent, screen.stats.frames, screen.status, screen._thread.is_alive(),
        screen._guest.alive]""")
    finally:
        notebook.step(f"await vm.exec_async(['kill', '{scroller}'])")
    sent, after, status, encoder_alive, input_alive = closed
    assert sent >= 1 and after == sent  # not one frame after the close
    assert status == "closed" and not encoder_alive and not input_alive
    left = notebook.step(counts)
    # the process's frame server (thread atp-frame-server) stays; the widget's token goes
    assert left == {"threads": [], "spice": before["spice"] - 1,
                    "frames": before["frames"] - 1, "sockets": before["sockets"] - 1}
    # the kernel goes on: the display it let go of still draws for others
    assert notebook.step("await vm.display.wait_still_async(1.0, timeout=60)\n"
                         "return vm.screenshot().size[0]") == 720


def test_a_kernel_interrupt_leaves_the_widget_live(jupyter_lab: JupyterLab, page: Page,
                                                   tmp_path: Path) -> None:
    # the interrupted cell catches it, so Run All goes on to the steps cell
    # 'sleeping' on stderr: an output of its own, not merged with the stdout line below
    interrupted = ("import sys\ntry:\n    print('sleeping', file=sys.stderr, flush=True)\n"
                   "    time.sleep(600)\n"
                   "except KeyboardInterrupt:\n    print('interrupted', screen.status)")
    cells = [SETUP, interrupted, STEPS]
    with open_notebook(jupyter_lab, page, tmp_path, cells, steps_run=False) as notebook:
        # the cell says it sleeps (the server's execution_state is no sign: with the widget
        # live it was seen idle while the cell ran, in one run of three)
        with explained(notebook):
            page.get_by_text("sleeping", exact=True).wait_for(timeout=60_000)
        time.sleep(1.0)  # into the sleep
        (kernel,) = _kernels(jupyter_lab)
        _kernels(jupyter_lab, "POST", f"/{kernel['id']}/interrupt")
        with explained(notebook):
            page.get_by_text("interrupted live", exact=True).wait_for(timeout=60_000)
        state = notebook.step("return [screen.status, screen._thread.is_alive(), "
                              "screen._guest.alive]")
        assert state == ["live", True, True]
        page.locator(CANVAS).click()
        for key in ["Enter", *"echo", "Space", *"after", "Minus", *"interrupt", "Enter"]:
            page.keyboard.press(key)
        notebook.wait_canvas_equals(notebook.screenshot("after-interrupt.png"))
        page.screenshot(path=str(tmp_path / "after-interrupt-page.png"))


def test_a_closed_tab_stops_the_encoding(jupyter_lab: JupyterLab, page: Page,
                                         tmp_path: Path) -> None:
    frames = "return [screen.stats.frames, vm.display.frame_number]"
    with open_notebook(jupyter_lab, page, tmp_path, [SETUP, STEPS]) as notebook:
        # the console changes ten times a second for 90 s, in the background
        ticker = notebook.step("""\
done = await vm.exec_async(["/bin/sh", "-c", "for i in $(seq 1 900); do echo tick $i; "
    "sleep 0.1; done > /dev/tty1 2>&1 < /dev/null & echo $!"])
return int(done.stdout)""")
        try:
            first = notebook.step(frames)
            wait_until(lambda: notebook.step(frames)[0] > first[0] + 3,
                       "frames sent while the tab is open", timeout=30)
            page.close()  # says nothing to the kernel: the view's teardown does not run
            previous = notebook.step(frames)
            deadline = time.monotonic() + 90
            while True:  # the pacing stops after 30 s without a word from a view
                time.sleep(3.0)
                now = notebook.step(frames)
                if now[0] == previous[0]:
                    break
                assert time.monotonic() < deadline, f"still encoding: {previous} -> {now}"
                previous = now
            time.sleep(3.0)
            later = notebook.step(frames)
            assert later[0] == now[0], (now, later)  # stopped for good ...
            assert later[1] > now[1], (now, later)  # ... while the display still changes
            assert notebook.step("return screen.status") == "live"
        finally:
            notebook.step(f"await vm.exec_async(['kill', '{ticker}'])")


def test_a_page_that_cannot_reach_the_frame_socket_gets_its_frames_by_comm(
        jupyter_lab: JupyterLab, page: Page, tmp_path: Path, tester: Vm) -> None:
    # as a browser on another machine, or a proxy that passes only Jupyter's own sockets:
    # the widget's frame socket closes at once, the page says so and is fed by comm
    page.route_web_socket(re.compile(r"/frames/"), lambda socket: socket.close())
    with open_notebook(jupyter_lab, page, tmp_path, [SETUP, STEPS]) as notebook:
        assert page.evaluate(f"document.querySelector('{CANVAS}').dataset.transport") == "comm"
        assert notebook.step("return screen.transport") == "comm"
        tester.exec(["/bin/sh", "-c", "echo frames-by-comm > /dev/tty1"])
        notebook.wait_canvas_equals(notebook.screenshot("by-comm.png"))
    page.unroute_all()


def test_frames_come_on_the_widgets_socket_when_the_page_reaches_it(
        notebook: LiveNotebook, tester: Vm) -> None:
    page = notebook.page
    assert page.evaluate(f"document.querySelector('{CANVAS}').dataset.transport") == "socket"
    assert notebook.step("return screen.transport") == "socket"
    sent = notebook.step("return screen.stats.frames")
    tester.exec(["/bin/sh", "-c", "echo frames-by-socket > /dev/tty1"])
    notebook.wait_canvas_equals(notebook.screenshot("by-socket.png"))
    assert notebook.step("return screen.stats.frames") > sent
