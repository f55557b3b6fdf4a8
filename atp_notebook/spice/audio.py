"""The guest's sound through Spice: ``vm.audio.capture(seconds)`` (Playback) and
``vm.audio.send(clip)`` (Record), no libvirt needed.

Each channel opens on first use and fails alone: a Playback or Record channel that ends
(or sends garbage) makes the call using it raise ChannelClosed / RemoteProtocolError, Main,
Inputs and Display go on, and the next call links the channel again.

Capture: the playback channel's frames between the call and its end, laid on the server's
clock (see :class:`~atp_notebook.spice.audio_clip.ClipAssembler`): silence while the guest
plays nothing is no sound at all (the server sends nothing between STOP and START), a
pause inside the capture is a gap. Send: the clip goes out paced at real time, at most
:data:`SEND_LEAD_S` ahead of it (the server keeps only 170 ms), and only while the guest
records: before its START the call waits, and a STOP pauses it until the next START.

Example::

    with vm.audio.start_capture() as capture:        # or: clip = vm.audio.capture(2.0)
        vm.exec(["aplay", "/tmp/tone.wav"])
    clip = capture.clip                              # an AudioClip
    clip.dominant_frequency()                        # 1000.0
    vm.audio.send(tone(440, 2.0))                    # while the guest runs arecord
    vm.audio.playback                                # AudioChannelState(open=True, ...)
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy.typing as npt

from atp_notebook.bridge import atp_async, atp_blocking, within
from atp_notebook.errors import AtpError, ChannelClosed, InvalidArgument, OperationTimeout
from atp_notebook.listeners import ListenerHandle
from atp_notebook.spice.audio_clip import AudioClip, ClipAssembler, as_clip, as_stereo
from atp_notebook.spice.proto.constants import ChannelType
from atp_notebook.spice.proto.playback import AudioData, AudioStart, PlaybackProtocol
from atp_notebook.spice.proto.record import MAX_RECORD_SAMPLES, RecordProtocol
from atp_notebook.spice.vm_events import ChannelEnded, ChannelMessage, SpiceVmEvent

if TYPE_CHECKING:
    from atp_notebook.spice.vm import SpiceVmConnection
    from atp_notebook.transport import TransportManager

OPEN_TIMEOUT_S = 15.0
START_TIMEOUT_S = 30.0  # how long send() waits for the guest to start recording
# how far ahead of real time send() may be: above the 85 ms the server wants before it
# hands the guest anything, below the 170 ms it keeps (sound.cpp RECORD_SAMPLES_SIZE)
SEND_LEAD_S = 0.12
CHUNK_FRAMES = MAX_RECORD_SAMPLES // 4  # 480 stereo frames: one DATA message


@dataclass(frozen=True)
class AudioChannelState:
    """One audio channel as the server last described it."""

    open: bool
    started: bool = False  # the guest has its device open (between START and STOP)
    rate: int | None = None
    channels: int | None = None
    mode: str | None = None
    volumes: tuple[int, ...] | None = None  # the guest mixer, 0..65535 per channel
    muted: bool | None = None
    latency_ms: int | None = None  # playback only


@dataclass
class SendProgress:
    """How far a send got (for its timeout's message)."""

    total: int
    frames: int = 0
    waiting: bool = False  # for the guest's RECORD_START


class AudioCapture:
    """A capture under way: frames collect until :meth:`stop` (or leaving ``with``),
    which returns the clip (also kept in ``clip``). Raises ChannelClosed if the playback
    channel ended meanwhile."""

    def __init__(self, audio: VmAudio) -> None:
        self.audio = audio
        self.clip: AudioClip | None = None
        self._assembler: ClipAssembler | None = None
        self._handle: ListenerHandle | None = None
        self._error: AtpError | None = None
        self.frames_seen = 0  # DATA frames heard (the widget and bench poll it)
        self.first_arrival: float | None = None  # time.monotonic() of the first frame
        self.first_sound: float | None = None  # ... of the first frame that is not silence

    def __repr__(self) -> str:
        state = "done" if self._handle is None else "running"
        return f"<AudioCapture {self.audio.vm_id} {state}, {self.frames_seen} frames>"

    def attach(self, connection: SpiceVmConnection) -> None:
        self._handle = connection.add_listener(self._on_event)

    def _on_event(self, event: SpiceVmEvent) -> None:
        if getattr(event, "channel_type", None) is not ChannelType.PLAYBACK:
            return
        if isinstance(event, ChannelEnded):
            self._error = ChannelClosed(
                f"{self.audio.vm_id}: the playback channel ended during the capture "
                f"({event.error})", hint="capture again: the channel reopens on next use")
            return
        if not isinstance(event, ChannelMessage):
            return
        message = event.event
        if isinstance(message, AudioStart) and self._assembler is None:
            self._assembler = ClipAssembler(message.frequency, message.channels)
        elif isinstance(message, AudioData):
            arrived = time.monotonic()
            if self._assembler is None:  # started before the capture: ask the protocol
                self._assembler = self.audio.playback_assembler()
            if self._assembler is not None:
                self._assembler.add(message.time, message.data, arrived)
                self.frames_seen = self._assembler.frames
                if self.first_arrival is None:
                    self.first_arrival = arrived
                if self.first_sound is None and message.data.count(0) != len(message.data):
                    self.first_sound = arrived

    def discard(self) -> None:
        """Stop collecting, keeping nothing (a failed or cancelled capture)."""
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.close()

    def _finish(self) -> AudioClip:
        self.discard()
        if self._error is not None:
            raise self._error
        asm = self._assembler or ClipAssembler(48000, 2)
        self.clip = asm.clip()
        return self.clip

    async def _stop(self) -> AudioClip:
        """Stop collecting; the clip. Example: ``clip = capture.stop()``."""
        return self._finish()

    stop = atp_blocking(_stop)
    stop_async = atp_async(_stop)

    def __enter__(self) -> AudioCapture:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    async def __aenter__(self) -> AudioCapture:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop_async()


class VmAudio:
    """One VM's sound: Playback (``capture``, ``start_capture``) and Record (``send``);
    ``playback`` / ``record`` give each channel's state. Each method has its ``_async``
    form."""

    def __init__(self, manager: TransportManager, vm_id: str) -> None:
        self.manager = manager
        self.vm_id = vm_id
        self.log = logging.getLogger(f"atp.spice.{vm_id}.audio")

    def __repr__(self) -> str:
        return f"<VmAudio {self.vm_id}>"

    @property
    def spice(self) -> SpiceVmConnection:
        return self.manager.spice_connection(self.vm_id)

    # --- state ------------------------------------------------------------------------------

    def _protocol(self, channel_type: ChannelType) -> Any:
        try:
            return self.spice.channel(channel_type).protocol
        except ChannelClosed:
            return None

    @property
    def playback(self) -> AudioChannelState:
        """The playback channel's state (``open=False`` until first used)."""
        protocol = self._protocol(ChannelType.PLAYBACK)
        if not isinstance(protocol, PlaybackProtocol):
            return AudioChannelState(open=False)
        return _state(protocol.audio, protocol.latency_ms)

    @property
    def record(self) -> AudioChannelState:
        """The record channel's state (``open=False`` until first used)."""
        protocol = self._protocol(ChannelType.RECORD)
        if not isinstance(protocol, RecordProtocol):
            return AudioChannelState(open=False)
        return _state(protocol.audio, None)

    def playback_assembler(self) -> ClipAssembler | None:
        start = self._protocol(ChannelType.PLAYBACK)
        audio_start = start.audio.start if isinstance(start, PlaybackProtocol) else None
        if audio_start is None:
            return None
        return ClipAssembler(audio_start.frequency, audio_start.channels)

    # --- playback -----------------------------------------------------------------------------

    async def _start_capture(self, timeout: float = OPEN_TIMEOUT_S) -> AudioCapture:
        """Collect the guest's sound from now on (the playback channel opens if needed).
        Example: ``with vm.audio.start_capture() as cap: ...; cap.clip``."""
        capture = AudioCapture(self)
        connection = self.spice
        capture.attach(connection)  # before the open: its first messages count
        try:
            await connection.open_channel(ChannelType.PLAYBACK, timeout=timeout)
        except BaseException:
            capture.discard()
            raise
        return capture

    async def _capture(self, seconds: float, timeout: float = OPEN_TIMEOUT_S) -> AudioClip:
        """The guest's sound for the next ``seconds`` (an AudioClip; empty if it played
        nothing). Example: ``vm.audio.capture(2.0).dominant_frequency()``."""
        if not 0 < seconds <= 3600:
            raise InvalidArgument(f"capture for {seconds} s: want 0 < seconds <= 3600")
        capture = await self._start_capture(timeout)
        try:
            await asyncio.sleep(seconds)
        except BaseException:
            capture.discard()
            raise
        return await capture._stop()

    # --- record ---------------------------------------------------------------------------------

    async def _send(self, audio: AudioClip | bytes | str | Path | npt.NDArray[Any],
                    rate: int = 48000, timeout: float | None = None) -> int:
        """Send sound to the guest's capture device, paced at real time, while it records
        (waits for its START; a STOP pauses). ``audio``: a clip, WAV bytes or path, or an
        array at ``rate``. Returns the frames sent. Example: ``vm.audio.send("a.wav")``."""
        clip = as_clip(audio, rate)
        stereo = as_stereo(clip)
        limit = timeout if timeout is not None else START_TIMEOUT_S + 2 * clip.duration
        progress = SendProgress(len(stereo))
        try:
            async with within(limit, f"{self.vm_id}: sending {clip.duration:.2f} s of sound"):
                return await self._send_paced(clip.rate, stereo.astype("<i2").tobytes(),
                                              limit, progress)
        except OperationTimeout as exc:
            waiting = (" and the guest is not recording (no RECORD_START): start its "
                       "arecord first" if progress.waiting else "")
            raise OperationTimeout(f"{exc.message}: {progress.frames} of {progress.total} "
                                   f"frames sent{waiting}") from None

    async def _send_paced(self, rate: int, pcm: bytes, timeout: float,
                          progress: SendProgress) -> int:
        connection = self.spice
        changed = asyncio.Event()
        ended: list[str] = []

        def on_event(event: SpiceVmEvent) -> None:
            if getattr(event, "channel_type", None) is ChannelType.RECORD:
                if isinstance(event, ChannelEnded):
                    ended.append(event.error)
                changed.set()

        loop = asyncio.get_running_loop()
        with connection.add_listener(on_event):
            channel = await connection.open_channel(ChannelType.RECORD, timeout=timeout)
            protocol = channel.protocol
            assert isinstance(protocol, RecordProtocol)
            step = CHUNK_FRAMES * 4
            sent = 0
            anchor: tuple[float, int] | None = None  # (loop time, bytes sent) at a (re)start
            while sent < len(pcm):
                if ended:
                    raise ChannelClosed(f"{self.vm_id}: the record channel ended while "
                                        f"sending ({ended[0]})",
                                        hint="send again: the channel reopens on next use")
                start = protocol.audio.start
                if start is None:  # the guest does not record (yet, or any more): wait
                    anchor = None
                    changed.clear()
                    progress.waiting = True
                    await changed.wait()
                    progress.waiting = False
                    continue
                if start.frequency != rate:
                    raise InvalidArgument(f"{self.vm_id}: the guest records at "
                                          f"{start.frequency} Hz, the sound is {rate} Hz",
                                          hint="resample it first")
                now = loop.time()
                if anchor is None:
                    anchor = (now, sent)
                    protocol.send_start(_ms(now))
                due = anchor[0] + (sent - anchor[1]) / 4 / rate - SEND_LEAD_S
                if due > now:
                    await asyncio.sleep(due - now)
                    continue  # the guest may have stopped meanwhile
                protocol.send_samples(_ms(now), pcm[sent:sent + step])
                await channel.send()
                sent += min(step, len(pcm) - sent)
                progress.frames = sent // 4
        return sent // 4

    start_capture = atp_blocking(_start_capture)
    start_capture_async = atp_async(_start_capture)
    capture = atp_blocking(_capture)
    capture_async = atp_async(_capture)
    send = atp_blocking(_send)
    send_async = atp_async(_send)


def _ms(loop_time: float) -> int:
    return int(loop_time * 1000) & 0xFFFFFFFF


def _state(audio: Any, latency_ms: int | None) -> AudioChannelState:
    start: AudioStart | None = audio.start
    return AudioChannelState(
        open=True, started=start is not None,
        rate=start.frequency if start else None, channels=start.channels if start else None,
        mode=audio.mode.name if audio.mode is not None else None,
        volumes=audio.volumes, muted=audio.muted, latency_ms=latency_ms)
