"""Display VMs on demand: a lab guest whose Spice server uses one image-compression setting,
with two qxl cards, started for a test or a capture and gone afterwards.

``atp-lab up`` does not start them: each one costs a TCG guest (a 2-core machine runs one
comfortably beside the lab), and each setting is needed only by the tests that compare what
the server sends under it. Every display VM is a *transient* libvirt domain named
``atp-disp-<setting>`` on a loopback Spice port of its own (plain, no password), built from
the lab's guest image and domain XML (:mod:`.domains`) with these changes:

- ``<graphics type='spice'>`` gets ``<image compression>``, ``<jpeg compression>``,
  ``<zlib compression>`` and ``<streaming mode>`` from the :class:`DisplaySetting`. jpeg and
  zlib are ``never`` unless asked for: under ``auto`` they switch on when Main's bandwidth
  test finds the client slow, and a capture must not depend on that (research/display.md §1.8).
- two qxl video devices: the primary ``qxl-vga`` and a second ``qxl``, so the server has
  two display channels (ids 0 and 1) whose GLZ images share one dictionary; the guest gets
  ``/dev/fb0`` and ``/dev/fb1``, both 1024x768 at 32 bpp (``atp-fb-on``). Until then the
  qxl-vga card is in VGA mode and shows the VGA text console (720x400), as the lab's own VMs
  do all the time.
- or, for the ``vga_text`` setting, one plain ``vga`` card and ``nomodeset`` on the kernel
  command line: the guest keeps the VGA text console for good and QEMU renders it itself
  (the path of BIOS screens: 32-pixel-wide BITMAP strips, research/display.md §1.10).
- no disk (nothing to snapshot), and a virtio-serial port for uploads (:class:`DisplayGuest`).
- with ``audio``: an ich6 HDA sound card whose codec plays into Spice's playback channel and
  records from its record channel (``<sound model='ich6'>`` + ``<audio type='spice'>``).
- with ``cpuset`` (``"1"``, ``"0-1,3"``): ``<vcpu cpuset=>``, which confines the whole QEMU
  process (vCPU, emulator and I/O threads, spice-server's worker and its encoders) to those
  host CPUs from its start, so a busy guest cannot take CPU time from the rest of the host.

Use :func:`display_vm` under the lab lock (``flock /tmp/atp-lab.lock``): it starts the VM,
waits for its guest agent and destroys it on exit, after errors too; a leftover display VM
of a killed run (this setting's or another's) is destroyed first, so at most one runs.

Example::

    with display_vm("glz") as dvm:                    # ~6 s to a working agent under TCG
        guest = DisplayGuest(session.vm(dvm.name))
        guest.framebuffers_on()                       # (FramebufferInfo('fb0', ...), ...)
        guest.show(known_image("mixed"), fb=1)
        # Spice on 127.0.0.1:dvm.spice_port, screendumps with vm.screendump(head)
        with guest.animate(animation_frames(4)) as animation:   # full screen, fb0
            ...                                       # stream frames arrive
        print(animation.written)                      # frames written; fb0 shows the last
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import libvirt
from PIL import Image

from atp_notebook.errors import GuestAgentError, InvalidArgument, LabError, OperationTimeout
from atp_notebook.lab import domains
from atp_notebook.lab.guest import GuestImage, build_guest
from atp_notebook.lab.known_images import WIDTH, framebuffer_bytes, image_digest
from atp_notebook.lab.paths import LabPaths, VmSpec
from atp_notebook.lab.system import port_in_use
from atp_notebook.virt.guest_agent import GuestAgent, decode_exec_status
from atp_notebook.virt.handle import DomainHandle
from atp_notebook.virt.virtio_serial import VirtioSerial

log = logging.getLogger("atp.lab")

NAME_PREFIX = "atp-disp-"
# Spice ports tried in order (the lab's own VMs use 5901-5904)
PORTS = range(5910, 5930)
UPLOAD_PORT_NAME = "com.atp.upload.0"
GUEST_IMAGE_DIR = "/tmp"  # noqa: S108 - the guest's own tmpfs, which only the lab uses
AGENT_TIMEOUT_S = 120.0
# qxl memory per card, KiB: vram and vgamem of 16 MiB hold a 1024x768x4 framebuffer with
# room to spare (the lab's atp-vm1 uses the same); ram is QEMU's default
QXL_RAM_KIB = 65536
QXL_VRAM_KIB = 16384
QXL_VGAMEM_KIB = 16384

IMAGE_COMPRESSIONS = ("auto_glz", "auto_lz", "quic", "glz", "lz", "off")
WAN_MODES = ("auto", "never", "always")
STREAMING_MODES = ("filter", "all", "off")
# "qxl": a qxl-vga and a qxl card (two heads, framebuffers with atp-fb-on); "vga": one
# plain VGA card whose guest keeps the VGA text console (nomodeset, no fb modules loaded)
VIDEO_MODELS = ("qxl", "vga")
VGA_VRAM_KIB = 16384
# libvirt's cpuset syntax, without exclusions ("^N"): "1", "0-1,3"
CPUSET = re.compile(r"\d+(-\d+)?(,\d+(-\d+)?)*")


@dataclass(frozen=True)
class DisplaySetting:
    """What one display VM's Spice server is told (libvirt ``<graphics>`` children)."""

    name: str
    image_compression: str = "auto_glz"
    jpeg: str = "never"  # jpeg-wan-compression
    zlib: str = "never"  # zlib-glz-wan-compression
    streaming: str = "off"  # streaming-video
    video: str = "qxl"  # one of VIDEO_MODELS
    # Spice port channels: a spiceport chardev on a virtio-serial port of the same name each
    spice_ports: tuple[str, ...] = ()
    # a sound card (ich6 + hda-duplex) whose output and input are Spice's playback and
    # record channels
    audio: bool = False

    def __post_init__(self) -> None:
        for value, allowed, what in ((self.image_compression, IMAGE_COMPRESSIONS, "image"),
                                     (self.jpeg, WAN_MODES, "jpeg"),
                                     (self.zlib, WAN_MODES, "zlib"),
                                     (self.streaming, STREAMING_MODES, "streaming"),
                                     (self.video, VIDEO_MODELS, "video")):
            if value not in allowed:
                raise InvalidArgument(f"display setting {self.name!r}: {what} {value!r} is not "
                                      f"one of {', '.join(allowed)}")

    @property
    def vm_name(self) -> str:
        return NAME_PREFIX + self.name


# One VM per server-side setting (issue 13 item 4). LZ4 is no server setting: the client asks
# for it (display cap + PREFERRED_COMPRESSION) from any of these.
DISPLAY_SETTINGS: dict[str, DisplaySetting] = {s.name: s for s in (
    *(DisplaySetting(c, image_compression=c) for c in IMAGE_COMPRESSIONS),
    # with quic every image the server would QUIC-compress becomes JPEG (auto_glz would do
    # so only for photo-like ones); the initial screen stays lossless, QUIC
    DisplaySetting("jpeg", image_compression="quic", jpeg="always"),
    DisplaySetting("zlib", zlib="always"),
    DisplaySetting("streaming", streaming="all"),
    # the VGA text console, 720x400, rendered by QEMU's VGA emulation
    DisplaySetting("vga_text", video="vga"),
)}
# The Spice port channel's VM (issue 16): the VGA text console (the cheapest display) and two
# spiceport chardevs, each on a guest virtio-serial port of its name. Not a display setting.
PORT_NAMES = ("com.atp.echo", "com.atp.second")
PORT_SETTING = DisplaySetting("ports", video="vga", spice_ports=PORT_NAMES)
# Folder sharing (issue 16, WebDav): the port spice-webdavd forwards the guest's
# connections over; the guest starts the daemon with atp-webdavd (lab/guest_webdav.py).
WEBDAV_PORT_NAME = "org.spice-space.webdav.0"
WEBDAV_SETTING = DisplaySetting("webdav", video="vga", spice_ports=(WEBDAV_PORT_NAME,))
# The Spice audio channels' VM (issue 16): the VGA text console and an HDA sound card wired
# to Spice; the guest loads its driver with atp-audio-on (lab/guest_audio.py).
AUDIO_SETTING = DisplaySetting("audio", video="vga", audio=True)


def setting_named(name: str | DisplaySetting) -> DisplaySetting:
    if isinstance(name, DisplaySetting):
        return name
    found = DISPLAY_SETTINGS.get(name)
    if found is None:
        raise InvalidArgument(f"unknown display setting {name!r}",
                              hint=f"one of: {', '.join(DISPLAY_SETTINGS)}")
    return found


@dataclass(frozen=True)
class DisplayVm:
    """A running display VM: its libvirt name and where its Spice server listens."""

    name: str
    setting: DisplaySetting
    spice_port: int
    spice_host: str = "127.0.0.1"
    boot_seconds: float = 0.0  # start -> guest agent answers


def display_domain_xml(paths: LabPaths, setting: DisplaySetting, port: int,
                       guest: GuestImage, cpuset: str | None = None) -> str:
    """The lab's domain XML for ``setting``'s VM (see the module docstring for the changes);
    ``cpuset`` confines its QEMU to those host CPUs."""
    if cpuset is not None and not CPUSET.fullmatch(cpuset):
        raise InvalidArgument(f"display VM cpuset {cpuset!r} is not a list of host CPUs",
                              hint='numbers and ranges, e.g. "1" or "0-1,3"')
    vm = VmSpec(setting.vm_name, spice_port=port, spice_tls_port=None, spice_password=False)
    root = ET.fromstring(domains.domain_xml(paths, vm, guest, None))
    vcpu = root.find("vcpu")
    if cpuset is not None and vcpu is not None:  # the lab's XML always has one
        vcpu.set("cpuset", cpuset)  # no <emulatorpin>: it defaults to this set too
    devices = root.find("devices")
    graphics = root.find("devices/graphics")
    if devices is None or graphics is None:
        raise LabError("the lab's domain XML has no <devices>/<graphics>")
    for unwanted in devices.findall("disk") + devices.findall("video"):
        devices.remove(unwanted)
    ET.SubElement(graphics, "image", compression=setting.image_compression)
    ET.SubElement(graphics, "jpeg", compression=setting.jpeg)
    ET.SubElement(graphics, "zlib", compression=setting.zlib)
    ET.SubElement(graphics, "streaming", mode=setting.streaming)
    if setting.video == "vga":
        ET.SubElement(ET.SubElement(devices, "video"), "model", type="vga",
                      vram=str(VGA_VRAM_KIB), heads="1", primary="yes")
        cmdline = root.find("os/cmdline")
        if cmdline is None or cmdline.text is None:
            raise LabError("the lab's domain XML has no <os>/<cmdline>")
        # no KMS driver may take the console over (the guest loads none by itself; this
        # keeps it so should one be built in)
        cmdline.text += " nomodeset"
    for primary in (True, False) if setting.video == "qxl" else ():
        # libvirt makes the primary qxl-vga, the other qxl
        model = ET.SubElement(ET.SubElement(devices, "video"), "model", type="qxl",
                              ram=str(QXL_RAM_KIB), vram=str(QXL_VRAM_KIB),
                              vgamem=str(QXL_VGAMEM_KIB), heads="1")
        if primary:
            model.set("primary", "yes")
    upload = ET.SubElement(devices, "channel", type="unix")
    ET.SubElement(upload, "target", type="virtio", name=UPLOAD_PORT_NAME)
    for name in setting.spice_ports:
        port_channel = ET.SubElement(devices, "channel", type="spiceport")
        ET.SubElement(port_channel, "source", channel=name)
        ET.SubElement(port_channel, "target", type="virtio", name=name)
    if setting.audio:
        # libvirt 9 adds <audio type='spice'> by itself for Spice graphics; named here so
        # the card is wired to it whatever the default (QEMU: -audiodev spice, hda-duplex)
        for unwanted in devices.findall("sound") + devices.findall("audio"):
            devices.remove(unwanted)
        sound = ET.SubElement(devices, "sound", model="ich6")
        ET.SubElement(sound, "audio", id="1")
        ET.SubElement(devices, "audio", id="1", type="spice")
    return ET.tostring(root, encoding="unicode")


def _lab_domain(dom: libvirt.virDomain) -> bool:
    try:
        dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, domains.LAB_NAMESPACE, 0)
    except libvirt.libvirtError:
        return False
    return True


def remove(conn: libvirt.virConnect, name: str) -> bool:
    """Destroy (and undefine, if persistent) the lab display VM ``name``; False if absent.
    A domain of that name that the lab did not make is refused, not touched."""
    dom = domains.lookup(conn, name)
    if dom is None:
        return False
    if not _lab_domain(dom):
        raise LabError(f"a domain named {name!r} exists and was not made by atp-lab",
                       hint=f"rename or remove it (`virsh destroy {name}`)")
    persistent = dom.isPersistent()
    if dom.isActive():
        log.info("stopping display VM %s", name)
        dom.destroy()  # a transient domain is gone after this
    if persistent:
        dom.undefine()
    return True


def remove_leftovers(conn: libvirt.virConnect) -> list[str]:
    """Remove every lab display VM (a killed run's); the names removed."""
    removed = []
    for dom in conn.listAllDomains(0):
        name = dom.name()
        if name.startswith(NAME_PREFIX) and _lab_domain(dom) and remove(conn, name):
            removed.append(name)
    return removed


def free_port() -> int:
    for port in PORTS:
        if not port_in_use(port):
            return port
    raise LabError(f"no free Spice port for a display VM in {PORTS.start}-{PORTS.stop - 1}")


def start(conn: libvirt.virConnect, paths: LabPaths, setting: DisplaySetting,
          agent_timeout: float = AGENT_TIMEOUT_S, cpuset: str | None = None) -> DisplayVm:
    """Start ``setting``'s VM (removing any display VM left over) and wait for its agent;
    ``cpuset``: the host CPUs its QEMU may use (all without)."""
    for name in remove_leftovers(conn):
        log.warning("removed display VM %s left over from an earlier run", name)
    port = free_port()
    paths.console_log(setting.vm_name).parent.mkdir(parents=True, exist_ok=True)
    xml = display_domain_xml(paths, setting, port, build_guest(paths.guest_dir), cpuset)
    began = time.monotonic()
    log.info("starting display VM %s (Spice port %d)", setting.vm_name, port)
    try:
        dom = conn.createXML(xml, 0)
    except libvirt.libvirtError as exc:
        raise LabError(f"cannot start {setting.vm_name}: {exc.get_error_message()}") from exc
    try:
        domains.wait_for_agents([dom], paths, agent_timeout)
    except BaseException:
        remove(conn, setting.vm_name)
        raise
    return DisplayVm(setting.vm_name, setting, port, boot_seconds=time.monotonic() - began)


@contextmanager
def display_vm(setting: str | DisplaySetting, paths: LabPaths | None = None,
               agent_timeout: float = AGENT_TIMEOUT_S,
               cpuset: str | None = None) -> Iterator[DisplayVm]:
    """A running display VM for ``setting`` (a :data:`DISPLAY_SETTINGS` name), destroyed on
    exit; ``cpuset`` confines its QEMU to those host CPUs. Hold the lab lock around it."""
    chosen = setting_named(setting)
    lab = paths or LabPaths.default()
    conn = domains.open_libvirt()
    try:
        vm = start(conn, lab, chosen, agent_timeout, cpuset)
        try:
            yield vm
        finally:
            remove(conn, vm.name)
    finally:
        conn.close()


# --- the guest side ---------------------------------------------------------------------


# fbcon must still be bound (atp-fb-show unbinds it, and the kernel refuses to bind it
# again: vt_bind() needs a built-in console driver to take over from, and the qxl driver's
# takeover unregistered vgacon); stop its cursor blink
FBCON_ON = ("for c in /sys/class/vtconsole/vtcon*; do grep -q 'frame buffer' $c/name && "
            "[ $(cat $c/bind) = 1 ] && { echo 0 >/sys/class/graphics/fbcon/cursor_blink; "
            "exit 0; }; done; echo 'the framebuffer console is unbound (atp-fb-show unbinds "
            "it for good): show the console before any image' >&2; exit 1")


@dataclass(frozen=True)
class FramebufferInfo:
    name: str  # fb0
    driver: str  # qxldrmfb
    width: int
    height: int
    bpp: int


class DisplayGuest:
    """The framebuffer helpers of a display VM's guest (``atp-fb-on``, ``atp-fb-show``,
    ``atp-fb-animate``, ``atp-recv`` in templates/guest-init.sh), driven through its
    agent. ``vm`` is the VM as the toolkit sees it (``session.vm(dvm.name)``).

    Images travel over the VM's upload port: a 3 MiB framebuffer image takes 0.3 s there
    under TCG (port open, guest-exec and all), against 0.85 s through guest-file-write
    (base64 in 96 KiB requests), and as gzip through guest-file-write plus gunzip in the
    guest 0.3 s for the mixed image, 1.1 s for the photo (measured).
    """

    def __init__(self, vm: DomainHandle, timeout: float = 60.0) -> None:
        self.vm = vm
        self.agent = GuestAgent(vm, timeout=timeout)
        self.timeout = timeout
        self._uploaded: dict[str, str] = {}  # image digest -> guest path
        self._widths: dict[int, int] = {}  # fb number -> width, from framebuffers_on()

    def run(self, argv: list[str]) -> str:
        """Run a guest command and wait for it: its stdout, or GuestAgentError."""
        return self.agent.exec(argv, timeout=self.timeout).check().text

    def framebuffers_on(self) -> tuple[FramebufferInfo, ...]:
        """Load the qxl stack; one entry per framebuffer (fb0 and fb1 on a display VM)."""
        found = []
        for line in self.run(["/usr/bin/atp-fb-on"]).splitlines():
            name, driver, size, bpp = line.split()
            width, height = (int(v) for v in size.split(","))
            found.append(FramebufferInfo(name, driver, width, height,
                                         int(bpp.removesuffix("bpp"))))
            self._widths[int(name.removeprefix("fb"))] = width
        return tuple(found)

    def upload(self, path: str, data: bytes) -> None:
        """Put ``data`` into the guest file ``path`` through the upload port."""
        argv = ["/usr/bin/atp-recv", UPLOAD_PORT_NAME, path, str(len(data))]
        # the host side opens first: a guest reading a port the host has not opened sees EOF
        with VirtioSerial(self.vm, UPLOAD_PORT_NAME).open(self.timeout) as port:
            pid = int(self.agent.command("guest-exec", path=argv[0], arg=argv[1:],
                                         capture_output=True)["pid"])
            port.send(data, self.timeout)
            deadline = time.monotonic() + self.timeout
            while (done := decode_exec_status(
                    self.agent.command("guest-exec-status", pid=pid), argv)) is None:
                if time.monotonic() > deadline:
                    raise GuestAgentError(f"{' '.join(argv)}: not done after "
                                          f"{self.timeout:g} s")
                time.sleep(0.02)
        done.check()

    def image_path(self, image: Image.Image) -> str:
        """The guest path holding ``image`` as framebuffer bytes (uploaded once)."""
        return self._frames_path((image,))

    def _frames_path(self, frames: Sequence[Image.Image]) -> str:
        """The guest path holding ``frames`` one after the other (uploaded once)."""
        digest = image_digest(frames[0]) if len(frames) == 1 else hashlib.sha256(
            "".join(image_digest(f) for f in frames).encode()).hexdigest()
        path = self._uploaded.get(digest)
        if path is None:
            path = f"{GUEST_IMAGE_DIR}/atp-image-{digest[:16]}.raw"
            self.upload(path, b"".join(framebuffer_bytes(f) for f in frames))
            self._uploaded[digest] = path
        return path

    def show(self, image: Image.Image | None, fb: int = 0,
             rows: tuple[int, int] | None = None) -> None:
        """Write ``image`` (None: black) to ``/dev/fb<fb>`` in one write; ``rows`` = (first,
        count) writes only that band of it."""
        source = "/dev/zero" if image is None else self.image_path(image)
        argv = ["/usr/bin/atp-fb-show", source, str(fb)]
        if rows is not None:
            argv += [str(rows[0]), str(rows[1])]
        self.run(argv)

    def console(self, text: str, framebuffer: bool = False) -> None:
        """Clear the text console (tty1), hide its cursor and print ``text`` there: a still
        screen of text. The VGA text console (720x400, QEMU renders it) unless
        ``framebuffer``: then the qxl stack is loaded and fbcon draws tty1 on fb0 (1024x768,
        the guest renders it), its cursor blink off. fbcon cannot come back after
        :meth:`show` (GuestAgentError): show the console first.
        """
        if framebuffer:
            self.framebuffers_on()
            self.run(["/bin/sh", "-c", FBCON_ON])
        # ESC[?25l hides the cursor: QEMU's VGA text cursor and fbcon's both blink otherwise
        self.agent.exec(["/bin/sh", "-c", "cat >/dev/tty1"],
                        input=b"\033[H\033[2J\033[?25l" + text.encode(),
                        timeout=self.timeout).check()

    def start_animation(self, frames: Sequence[Image.Image], fb: int = 0, row: int = 0,
                        max_frames: int = 0, *, one_process: bool = False,
                        fps: int = 0) -> Animation:
        """Start writing ``frames`` to ``/dev/fb<fb>`` from row ``row``, one after the other
        and over again, as fast as the guest can (``atp-fb-animate``: one write() each, so
        one dirty rectangle and one draw per frame); :meth:`Animation.stop` ends it. The
        frames are full-width bands of equal height (the whole 1024x768 screen, or fewer
        rows), uploaded once; ``max_frames`` > 0 stops the guest by itself after that many.
        ``one_process``: the same from one C process (``atp-fb-play``, guest_src/), not a
        ``dd`` per frame (whose process start and read cost as much as the write, under TCG).
        ``fps`` > 0 (``one_process`` only): at most that many frames a second, as a player
        would show them, instead of as fast as the guest can.
        """
        if not frames:
            raise InvalidArgument("an animation needs at least one frame")
        size = frames[0].size
        width = self._widths.get(fb, WIDTH)
        if any(f.size != size for f in frames) or size[0] != width:
            raise InvalidArgument(
                f"animation frames must all be {width} px wide (fb{fb}'s width) and of one "
                f"height, not {sorted({f.size for f in frames})}")
        if fps and (not one_process or not 0 < fps <= 1000):
            raise InvalidArgument(f"animation fps {fps}: 1..1000, and only with one_process "
                                  "(atp-fb-play)")
        if row < 0 or max_frames < 0:
            raise InvalidArgument(f"animation row {row} and max_frames {max_frames} must "
                                  "not be negative")
        command = "/usr/bin/atp-fb-play" if one_process else "/usr/bin/atp-fb-animate"
        argv = [command, self._frames_path(frames), str(len(frames)),
                str(fb), str(row), str(max_frames), *([str(fps)] if fps else [])]
        pid = int(self.agent.command("guest-exec", path=argv[0], arg=argv[1:],
                                     capture_output=True)["pid"])
        return Animation(self, pid, tuple(frames), fb, row, tuple(argv))

    @contextmanager
    def animate(self, frames: Sequence[Image.Image], fb: int = 0, row: int = 0,
                max_frames: int = 0, *, one_process: bool = False,
                fps: int = 0) -> Iterator[Animation]:
        """:meth:`start_animation` for the ``with`` block, stopped at its end (after errors
        too); afterwards ``/dev/fb<fb>`` shows ``frames[-1]`` at ``row``."""
        animation = self.start_animation(frames, fb, row, max_frames, one_process=one_process,
                                         fps=fps)
        try:
            yield animation
        finally:
            animation.stop()


@dataclass
class Animation:
    """An ``atp-fb-animate`` running in the guest (:meth:`DisplayGuest.start_animation`).

    Example::

        animation = guest.start_animation(animation_frames(8, rows=96), row=300)
        ...
        animation.stop()             # the guest writes frames[-1] last
        print(animation.written)     # how many frames the guest wrote
    """

    guest: DisplayGuest
    pid: int  # the guest command's pid (guest-exec), also its stop file's name
    frames: tuple[Image.Image, ...]
    fb: int
    row: int
    argv: tuple[str, ...]
    written: int | None = None  # frames written, once it ended

    @property
    def final(self) -> Image.Image:
        """What the animated rows show once it ended: the last frame."""
        return self.frames[-1]

    @property
    def box(self) -> tuple[int, int, int, int]:
        """The animated area: (x, y, width, height), the ``region`` of the display API."""
        width, height = self.final.size
        return (0, self.row, width, height)

    def stop(self, timeout: float | None = None) -> int:
        """Ask the guest to stop (after the frame it is writing and the last frame) and wait
        for it: the number of frames written. Stopping twice, or after the guest ended by
        itself, is harmless."""
        if self._poll() is None:
            # the guest command looks for this file between frames; its pid names it
            self.guest.run(["/bin/touch", f"/run/atp-fb-animate.{self.pid}.stop"])
        return self.wait(timeout)

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the guest to end by itself (``max_frames``): the frames written."""
        limit = self.guest.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while (written := self._poll()) is None:
            if time.monotonic() > deadline:
                raise OperationTimeout(f"{' '.join(self.argv)}: still running after "
                                       f"{limit:g} s")
            time.sleep(0.05)
        return written

    def _poll(self) -> int | None:
        """The frames written once the guest command ended, else None. qemu-ga forgets a
        process once it reported its end, so the answer is kept."""
        if self.written is None:
            done = decode_exec_status(
                self.guest.agent.command("guest-exec-status", pid=self.pid), self.argv)
            if done is not None:
                self.written = int(done.check().text.strip())
        return self.written
