"""Spice Playback: end-to-end latency of the guest's sound, and the client CPU it costs.

The audio VM (``AUDIO_SETTING``: an ich6 HDA card wired to Spice) loads its driver with
``atp-audio-on``; a 1 kHz tone WAV is written to the guest through QGA beforehand.

- ``audio_playback_latency.p50``: from sending QGA ``guest-exec`` of ``aplay tone.wav`` to
  the first frame here that is not silence (``AudioCapture.first_sound``, stamped when the
  playback channel's reader hands the frame over). It holds the agent's round trip, aplay's
  start, the HDA DMA, QEMU's audio timer and spice-server's frame (10 ms). Anchor: QGA
  ``guest-exec`` of ``/bin/true`` followed by ``guest-exec-status`` until it exited, same
  VM, interleaved ABBA -- starting a guest process and hearing it ended, with no sound.
- ``audio_playback_cpu_per_audio_s``: CPU time of this process (all threads: the atp loop
  reading the channel, the clip assembly) per second of audio captured while aplay plays
  a 5 s tone (started through QGA, not polled); a plain figure (ms of CPU per s of audio)
  with the idle CPU of as long a capture without sound as extra key.

The bench takes the lab lock itself (``lab_lock``), unless a process it runs under holds it.

    .venv/bin/python -m bench.bench_audio [--quick]
"""

from __future__ import annotations

import statistics
import sys
import time

from atp_notebook.lab.display_capture import lab_lock
from atp_notebook.lab.display_vms import AUDIO_SETTING, display_vm
from atp_notebook.lab.guest_audio import AUDIO_DEVICE
from atp_notebook.session import Vm, connect
from atp_notebook.spice.audio_clip import tone
from bench.measure import emit, emit_plain, is_quick, iterations

TIMEOUT_S = 60.0
SHORT_WAV = "/tmp/atp-bench-short.wav"  # in the guest
LONG_WAV = "/tmp/atp-bench-long.wav"  # in the guest
SHORT_S = 0.3
LONG_S = 5.0
MARGIN_S = 0.5  # aplay's start and the last frames' way here


def wait_exited(vm: Vm, pid: int) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not vm.qga("guest-exec-status", pid=pid).get("exited"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"guest process {pid} still running after {TIMEOUT_S} s")
        time.sleep(0.01)


def guest_exec(vm: Vm, path: str, *args: str) -> int:
    return int(vm.qga("guest-exec", path=path, arg=list(args))["pid"])


def latency_once(vm: Vm) -> float:
    """guest-exec(aplay) sent -> first non-silent frame here, in seconds."""
    with vm.audio.start_capture(timeout=TIMEOUT_S) as capture:
        began = time.monotonic()
        pid = guest_exec(vm, "/usr/bin/aplay", "-q", "-D", AUDIO_DEVICE, SHORT_WAV)
        deadline = began + TIMEOUT_S
        while capture.first_sound is None:
            if time.monotonic() > deadline:
                raise RuntimeError("no sound arrived through the playback channel")
            time.sleep(0.001)
        heard = capture.first_sound
        wait_exited(vm, pid)
    return heard - began


def anchor_once(vm: Vm) -> float:
    began = time.monotonic()
    wait_exited(vm, guest_exec(vm, "/bin/true"))
    return time.monotonic() - began


def cpu_per_audio_second(vm: Vm, play: bool) -> tuple[float, float]:
    """(CPU seconds of this process, seconds of audio captured) over LONG_S + a margin;
    the guest's aplay is started, not polled, so no agent traffic counts."""
    cpu0 = time.process_time()
    with vm.audio.start_capture(timeout=TIMEOUT_S) as capture:
        pid = guest_exec(vm, "/usr/bin/aplay", "-q", "-D", AUDIO_DEVICE, LONG_WAV) \
            if play else None
        time.sleep(LONG_S + MARGIN_S)
    cpu = time.process_time() - cpu0
    if pid is not None:
        wait_exited(vm, pid)
    clip = capture.clip
    return cpu, clip.duration if clip is not None else 0.0


def main() -> int:
    rounds = iterations(10, 3)
    with lab_lock(), connect() as session, display_vm(AUDIO_SETTING) as dvm:
        vm = session.vm(dvm.name)
        vm.exec(["/usr/bin/atp-audio-on"], timeout=TIMEOUT_S).check()
        vm.write_file(SHORT_WAV, tone(1000, SHORT_S).to_wav())
        vm.write_file(LONG_WAV, tone(1000, LONG_S).to_wav())
        latency_once(vm)  # warm-up: the playback channel links, aplay is in the page cache
        anchor_once(vm)
        ours: list[float] = []
        anchor: list[float] = []
        for i in range(rounds):  # ABBA: each side goes first every other round
            pair = [(ours, latency_once), (anchor, anchor_once)]
            for out, measure in pair if i % 2 == 0 else reversed(pair):
                out.append(measure(vm))
        idle_cpu, _ = cpu_per_audio_second(vm, play=False)
        cpu, audio_s = cpu_per_audio_second(vm, play=True)
    ours_ms = round(statistics.median(ours) * 1000, 2)
    anchor_ms = round(statistics.median(anchor) * 1000, 2)
    emit("audio_playback_latency.p50", ours_ms, anchor_ms, "ms",
         ours_is="QGA guest-exec(aplay 1 kHz tone) sent -> first non-silent Spice playback "
                 "frame here",
         anchor_is="QGA guest-exec(/bin/true) sent -> guest-exec-status says exited",
         n=rounds, p="p50", ours_max_ms=round(max(ours) * 1000, 2))
    if audio_s <= 0:
        raise RuntimeError("the 5 s tone captured no audio")
    emit_plain("audio_playback_cpu_per_audio_s", round(cpu * 1000 / audio_s, 2), "ms",
               ours_is="ms of CPU of this process per second of audio captured (aplay, a "
                       "5 s tone)",
               audio_s=round(audio_s, 3),
               idle_ms_per_s=round(idle_cpu * 1000 / (LONG_S + MARGIN_S), 2))
    if is_quick():
        print("audio: quick run", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
