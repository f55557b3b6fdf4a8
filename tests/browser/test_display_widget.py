"""The display widget in a real browser: JupyterLab on loopback, Debian's chromium, the lab's
atp-vm1. The notebook's kernel is the VM's one Spice client, so what the canvas is compared
with (``vm.screenshot()``) is taken by the notebook too and handed over in files.

Run under the lab lock: ``flock /tmp/atp-lab.lock .venv/bin/python -m pytest tests/browser``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Page

from tests.browser.conftest import JupyterLab

VM = "atp-vm1"
RUN_TIMEOUT_S = 240.0

# The VGA text console's cursor blinks (a frame every ~0.3 s): hidden while the test runs, so
# the screen can be still; shown again at the end.
SETUP = f"""\
import json, pathlib, time
from atp_notebook import connect
from atp_notebook.notebook.widget import DisplayWidget
OUT = pathlib.Path("out")
OUT.mkdir(exist_ok=True)
vm = connect().vm({VM!r})
vm.wait_for_agent(timeout=120)
vm.exec(["/bin/sh", "-c", "printf '\\\\033[?25l' > /dev/tty1"])
vm.exec(["/bin/rm", "-f", "/tmp/typed-in-widget"])
screen = DisplayWidget(vm)
screen"""

# runs while the widget streams: the kernel is busy, frames go on (they come from the atp loop)
ORACLE = """\
vm.display.wait_still(2.0, timeout=120)
vm.screenshot().save(OUT / "screenshot.png")
s = screen.stats
(OUT / "sent.json").write_text(json.dumps({"frames": s.frames, "lossless": s.lossless,
    "tiles": s.tiles, "bytes": s.bytes, "encode_seconds": s.encode_seconds}))
deadline = time.monotonic() + 120
while not (OUT / "compared").exists() and time.monotonic() < deadline:
    time.sleep(0.2)
vm.exec(["/bin/sh", "-c", "printf '\\\\033[?25h' > /dev/tty1"])
print("done")"""

# an async cell: ipykernel hands the widget's key messages over while it awaits
TYPED = """\
import asyncio
deadline = time.monotonic() + 120
while not (OUT / "typed").exists() and time.monotonic() < deadline:
    await asyncio.sleep(0.1)
for _ in range(50):
    await asyncio.sleep(0.2)
    result = await vm.exec_async(["/bin/cat", "/tmp/typed-in-widget"])
    if result.exit_code == 0:
        break
(OUT / "typed.json").write_text(json.dumps({"exit": result.exit_code,
    "stdout": result.stdout.decode(errors="replace")}))"""

# what the test types, as key presses by KeyboardEvent.code (Shift held for capitals and !)
TEXT = "echo AbC! >/tmp/typed-in-widget"
_US_KEYS = {" ": "Space", "!": "Shift+Digit1", ">": "Shift+Period", "/": "Slash",
            "-": "Minus"}


def key_presses(text: str) -> list[str]:
    return [_US_KEYS.get(c) or (f"Shift+Key{c}" if c.isupper() else f"Key{c.upper()}")
            for c in text]


ERROR_OUTPUT = ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']"
PAINTED_OR_FAILED = f"""() =>
  Number(document.querySelector('.atp-display canvas')?.dataset.painted) > 0
  || document.querySelector("{ERROR_OUTPUT}") !== null"""

READ_CANVAS = """() => {
  const canvas = document.querySelector(".atp-display canvas");
  const ctx = canvas.getContext("2d");
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  let text = "";
  for (let i = 0; i < data.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, data.subarray(i, i + 0x8000));
  }
  return {width: canvas.width, height: canvas.height, rgba: btoa(text)};
}"""


def run_all_cells(page: Page, lab: JupyterLab, notebook: str) -> None:
    page.goto(lab.url(f"lab/tree/{notebook}"))
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def wait_for_file(path: Path, lab: JupyterLab, timeout: float) -> Path:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"the notebook did not write {path.name} within {timeout:g} s; "
                        f"JupyterLab's log:\n{lab.log_tail()}", pytrace=False)
        time.sleep(0.2)
    return path


def canvas_image(page: Page) -> Image.Image:
    got = page.evaluate(READ_CANVAS)
    rgba = base64.b64decode(got["rgba"])
    return Image.frombytes("RGBA", (got["width"], got["height"]), rgba).convert("RGB")


@contextlib.contextmanager
def explained(page: Page, lab: JupyterLab, out: Path) -> Iterator[None]:
    """On a failure: a screenshot of the page in ``out``, the notebook's text and the
    server's log in the message."""
    try:
        yield
    except Exception as exc:
        page.screenshot(path=str(out / "failure.png"))
        notebook = page.locator(".jp-Notebook").inner_text(timeout=5_000)
        pytest.fail(f"{exc}\n--- the notebook ({out / 'failure.png'}):\n{notebook[-3000:]}"
                    f"\n--- JupyterLab's log:\n{lab.log_tail(20)}", pytrace=False)


def test_the_canvas_shows_the_vms_screen_exactly_once_still(
        jupyter_lab: JupyterLab, page: Page, tmp_path: Path) -> None:
    jupyter_lab.write_notebook("live.ipynb", [SETUP, ORACLE, TYPED])
    out = jupyter_lab.root / "out"
    run_all_cells(page, jupyter_lab, "live.ipynb")
    with explained(page, jupyter_lab, tmp_path):
        page.wait_for_function(PAINTED_OR_FAILED, timeout=RUN_TIMEOUT_S * 1000)
        assert page.locator(ERROR_OUTPUT).count() == 0, "a cell failed"
        sent = json.loads(wait_for_file(out / "sent.json", jupyter_lab,
                                        RUN_TIMEOUT_S).read_text())
        # the last frame sent is painted (its acknowledgement may wait for the busy kernel)
        page.wait_for_function(
            "document.querySelector('.atp-display canvas').dataset.frame === "
            f"'{sent['frames']}'", timeout=30_000)
    shown = canvas_image(page)
    page.screenshot(path=str(tmp_path / "jupyterlab.png"))
    shown.save(tmp_path / "canvas.png")
    (out / "compared").touch()
    reference = Image.open(out / "screenshot.png").convert("RGB")
    reference.save(tmp_path / "screenshot.png")
    assert shown.size == reference.size == (720, 400)
    a = np.asarray(shown, dtype=np.int16)
    b = np.asarray(reference, dtype=np.int16)
    differing = int(np.count_nonzero((a != b).any(axis=2)))
    assert differing == 0, (f"{differing} canvas pixels differ from vm.screenshot(); "
                            f"pictures in {tmp_path}")
    assert sent["lossless"] >= 1
    status = page.locator(".atp-display-status").inner_text()
    assert status.startswith(f"{VM} 720x400 · live · ")
    painted = page.evaluate("() => ({...document.querySelector('.atp-display canvas')"
                            ".dataset})")
    print(f"widget sent: {sent}; the view: {painted}")

    # keys typed into the focused canvas reach the guest's shell, shifted ones included
    page.get_by_text("done", exact=True).wait_for(timeout=RUN_TIMEOUT_S * 1000)
    page.locator(".atp-display canvas").click()
    # Enter first: whatever an earlier run left on the shell's line runs on its own
    for press in ["Enter", *key_presses(TEXT), "Enter"]:
        page.keyboard.press(press)
    (out / "typed").touch()
    with explained(page, jupyter_lab, tmp_path):
        typed = json.loads(wait_for_file(out / "typed.json", jupyter_lab,
                                         RUN_TIMEOUT_S).read_text())
        assert typed == {"exit": 0, "stdout": "AbC!\n"}
