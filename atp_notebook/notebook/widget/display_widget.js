// The display widget's views (anywidget ESM, no build step): the screen is painted once per
// widget (two views of one widget cost one decode). With exactly one view, frames are drawn
// straight into that view's <canvas>; otherwise (none yet, or several) into a backing
// canvas of the model's, which each view copies the painted tiles from, so frames that
// arrive before any view exists are not lost. Keyboard and pointer are captured while focused.
//
// Messages from the kernel: {type: "frame", n, width, height, tiles: [[x, y, w, h, fmt]]}
// with one binary buffer per tile (fmt "jpeg" | "png": an image file; "rgba": raw
// ImageData bytes). Each frame is painted in order and acknowledged with {type: "ack", n}
// (cumulative: it covers every frame up to n), the kernel sending the next ones only as
// acknowledgements come back. A frame painted while two or more later ones wait behind it
// is not acknowledged on its own (the next acknowledgement covers it): every message to
// the kernel makes it publish busy and idle, which JupyterLab redraws.
// Frames come on the widget's loopback WebSocket when the model names one (frame_socket;
// frame_socket.py: far cheaper a frame than the comm path) and it opens within
// SOCKET_OPEN_MS; the same messages, packed: uint32 header length (little-endian), the
// JSON header with `sizes` (each buffer's length), the buffers. Acknowledgements then go on
// the socket. A page whose socket fails or closes sends {type: "frames", via: "comm", page}
// and is fed by comm again. Frames may come both ways at a switch: a frame not newer than
// the newest received is dropped (numbers are the widget's, whichever the way).
// Messages to the kernel: hello / bye (a view appears / goes), ack, key {code, down},
// blur (release every held key and button), pointer {kind: move | down | up | wheel, x, y,
// button, dy, mode}, special {combo} (the row of keys under the canvas), snapshot {request}
// (answered by {type: "snapshot", request, name} and a PNG, or an error), reconnect.

const MOVE_INTERVAL_MS = 20; // pointer moves at most 50 a second (jupyter_rfb's figure)
// acknowledge a painted frame when fewer than this many later ones wait behind it: the
// kernel then still has frames in flight to send while the browser paints the queued ones
const ACK_BEHIND = 2;
const SOCKET_OPEN_MS = 3000; // a socket not open by then is given up for the comm
const screens = new WeakMap(); // model -> its Screen

// one socket message -> [the frame's JSON content, its buffers]
function unpackFrame(data) {
  const length = new DataView(data).getUint32(0, true);
  const msg = JSON.parse(new TextDecoder().decode(new Uint8Array(data, 4, length)));
  let offset = 4 + length;
  const buffers = msg.sizes.map((size) => {
    const view = new Uint8Array(data, offset, size);
    offset += size;
    return view;
  });
  return [msg, buffers];
}

function decodeTiles(msg, buffers) {
  return Promise.all(msg.tiles.map(([, , , , fmt], i) => {
    if (fmt === "rgba") return null;
    const blob = new Blob([buffers[i]], { type: `image/${fmt}` });
    // a moving view's JPEG takes chromium's default decode: asking for no colour conversion
    // and no premultiplication cost ~25 % more a 1024x768 frame (16.3 against 20.9 ms of
    // chromium's CPU, measured here); the exact (PNG) tiles keep both, bytes as sent
    if (fmt === "jpeg") return createImageBitmap(blob);
    return createImageBitmap(blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
  }));
}

// the whole picture of canvas ``from`` into canvas ``to``, sized like it
function copyCanvas(from, to) {
  if (to.width !== from.width || to.height !== from.height) {
    to.width = from.width; // clears it
    to.height = from.height;
  }
  if (from.width && from.height) to.getContext("2d", { alpha: false }).drawImage(from, 0, 0);
}

class Screen {
  constructor(model) {
    this.model = model;
    this.backing = document.createElement("canvas");
    this.backing.width = 0;
    this.backing.height = 0;
    this.target = this.backing; // where frames are painted: see retarget()
    this.ctx = this.backing.getContext("2d", { alpha: false });
    this.views = new Map(); // view canvas -> its callback after each frame painted
    this.painting = Promise.resolve();
    this.painted = 0;
    this.lastFrame = 0;
    this.received = 0; // number of the newest frame message
    this.acked = 0;
    this.paintMs = 0; // from arrival to drawn, all frames
    this.page = Math.random().toString(36).slice(2);
    this.socket = null; // the frame socket, once open
    this.transport = ""; // "socket" once open, "comm" once it failed or closed
    this.closed = false;
    this.onMessage = (msg, buffers) => {
      if (msg.type === "frame") this.onFrame(msg, buffers);
    };
    this.onFrame = (msg, buffers) => {
      if (msg.n <= this.received) return; // sent both ways at a switch: painted already
      // decoding starts at once (frames in flight decode side by side); drawing keeps order
      const received = performance.now();
      this.received = Math.max(this.received, msg.n);
      const decoded = decodeTiles(msg, buffers);
      this.painting = this.painting.then(async () => this.paint(msg, buffers, await decoded,
                                                               received)).catch((err) => {
        console.error("atp display widget: frame", msg.n, err);
        this.ack(msg.n); // a bad frame must not stop the stream
      });
    };
    model.on("msg:custom", this.onMessage);
    // the kernel names the socket just after the widget's first state: either may come first
    this.onSocketNamed = () => {
      const url = model.get("frame_socket");
      if (url && !this.socketTried) this.openSocket(url);
    };
    this.socketTried = false;
    model.on("change:frame_socket", this.onSocketNamed);
    this.onSocketNamed();
  }

  openSocket(url) {
    this.socketTried = true;
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) { // a page that may not open it (an https page, a bad URL)
      console.warn("atp display widget: frames by comm:", err);
      this.byComm();
      return;
    }
    ws.binaryType = "arraybuffer";
    const giveUp = setTimeout(() => ws.close(), SOCKET_OPEN_MS);
    ws.onopen = () => {
      clearTimeout(giveUp);
      this.socket = ws;
      this.transport = "socket";
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === "string") return;
      const [msg, buffers] = unpackFrame(ev.data);
      if (msg.type === "frame") this.onFrame(msg, buffers);
    };
    ws.onclose = () => { // also after a failed open
      clearTimeout(giveUp);
      if (this.socket === ws) this.socket = null;
      if (!this.closed) this.byComm();
    };
  }

  byComm() {
    this.transport = "comm";
    this.model.send({ type: "frames", via: "comm", page: this.page });
  }

  // a lone view's canvas is painted directly (no copy of each frame); with none or several
  // the backing canvas is, and a view that becomes (or stops being) the target takes the
  // current picture along
  retarget() {
    const next = this.views.size === 1 ? this.views.keys().next().value : this.backing;
    if (next === this.target) return;
    copyCanvas(this.target, next);
    this.target = next;
    this.ctx = next.getContext("2d", { alpha: false });
  }

  addView(canvas, onFrame) {
    this.views.set(canvas, onFrame);
    this.retarget();
  }

  removeView(canvas) {
    this.views.delete(canvas);
    this.retarget();
  }

  ack(n) {
    if (n <= this.acked) return;
    this.acked = n;
    if (this.socket) this.socket.send(JSON.stringify({ type: "ack", n }));
    else this.model.send({ type: "ack", n });
  }

  paint(msg, buffers, images, received) {
    const canvas = this.target;
    if (canvas.width !== msg.width || canvas.height !== msg.height) {
      canvas.width = msg.width; // clears it: such a frame holds the whole screen
      canvas.height = msg.height;
    }
    msg.tiles.forEach(([x, y, w, h, fmt], i) => {
      if (fmt === "rgba") {
        const b = buffers[i];
        const data = new Uint8ClampedArray(b.buffer, b.byteOffset, b.byteLength);
        this.ctx.putImageData(new ImageData(data, w, h), x, y);
      } else {
        this.ctx.drawImage(images[i], x, y);
        images[i].close();
      }
    });
    this.painted += 1;
    this.lastFrame = msg.n;
    this.paintMs += performance.now() - received;
    for (const view of this.views.values()) view(msg);
    if (this.received - msg.n < ACK_BEHIND) this.ack(msg.n);
  }

  close() {
    this.closed = true;
    if (this.socket) this.socket.close();
    this.model.off("msg:custom", this.onMessage);
    this.model.off("change:frame_socket", this.onSocketNamed);
  }
}

function screenOf(model) {
  let screen = screens.get(model);
  if (!screen) {
    screen = new Screen(model);
    screens.set(model, screen);
  }
  return screen;
}

function initialize({ model }) {
  const screen = screenOf(model);
  return () => {
    screen.close();
    screens.delete(model);
  };
}

const RECONNECTABLE = " — click to reconnect"; // link_state.py's suffix
const SNAPSHOT_WAIT_MS = 3000; // a busy kernel answers late: the canvas is saved instead
const BUTTON_CSS =
  "font: 11px var(--jp-ui-font-family, sans-serif); padding: 1px 5px; margin: 2px 2px 0 0;" +
  "border: 1px solid var(--jp-border-color1, #bbb); border-radius: 2px; cursor: pointer;" +
  "background: var(--jp-layout-color2, #eee); color: var(--jp-ui-font-color1, #222);";

function download(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

function render({ model, el }) {
  const root = document.createElement("div");
  root.className = "atp-display";
  root.style.cssText = "display: inline-block; width: 100%; max-width: 100%;";
  const stage = document.createElement("div"); // the canvas and, over it, the state
  stage.style.cssText = "position: relative;";
  const canvas = document.createElement("canvas");
  canvas.width = 0;
  canvas.height = 0;
  canvas.tabIndex = 0;
  // JupyterLab leaves keys alone on an element marked so (lumino's command registry)
  canvas.dataset.lmSuppressShortcuts = "true";
  canvas.style.cssText =
    "display: block; width: 100%; height: auto; outline: none; cursor: crosshair;" +
    "background: #000; border: 2px solid transparent; box-sizing: border-box;" +
    "touch-action: none;";
  // shown over the canvas while not live: what happened, and a click reconnects
  const overlay = document.createElement("div");
  overlay.className = "atp-display-overlay";
  overlay.style.cssText =
    "position: absolute; inset: 0; display: none; align-items: center;" +
    "justify-content: center; background: rgba(0, 0, 0, 0.55); color: #fff;" +
    "font: 14px var(--jp-ui-font-family, sans-serif); text-align: center; padding: 8px;" +
    "min-height: 3em;";
  stage.append(canvas, overlay);
  const toolbar = document.createElement("div");
  toolbar.className = "atp-display-keys";
  const status = document.createElement("div");
  status.className = "atp-display-status";
  status.style.cssText =
    "font: 12px var(--jp-code-font-family, monospace); color: #666; padding: 2px 0;";
  root.append(stage, toolbar, status);
  el.append(root);
  const ctx = canvas.getContext("2d", { alpha: false });

  const screen = screenOf(model);
  let fps = 0;
  let fpsCount = 0;
  let fpsSince = performance.now();
  let focused = false;

  function showStatus() {
    const state = model.get("status");
    const size = canvas.width ? ` ${canvas.width}x${canvas.height}` : "";
    const keys = focused ? " · keyboard captured" : "";
    // frames by comm are several times dearer a frame: say so, it explains a low rate
    const way = screen.transport === "comm" ? " (by comm)" : "";
    status.textContent = `${model.get("vm_name")}${size} · ${state} · ` +
      `${fps.toFixed(0)} fps${way}${keys}`;
    const live = state === "live";
    overlay.style.display = live ? "none" : "flex";
    overlay.textContent = state;
    overlay.style.cursor = state.endsWith(RECONNECTABLE) ? "pointer" : "default";
    root.dataset.status = state; // for tests
  }
  const fpsTimer = setInterval(() => {
    const now = performance.now();
    fps = (fpsCount * 1000) / (now - fpsSince);
    fpsCount = 0;
    fpsSince = now;
    showStatus();
  }, 1000);

  // after each frame painted (msg) or once (null): copy what changed unless the frame was
  // painted here directly, and fit the styles to the screen's size
  function copyFromScreen(msg) {
    const source = screen.target === canvas ? null : screen.target;
    if (source && (canvas.width !== source.width || canvas.height !== source.height ||
                   !msg)) {
      copyCanvas(source, canvas);
    } else if (source) {
      for (const [x, y, w, h] of msg.tiles) ctx.drawImage(source, x, y, w, h, x, y, w, h);
    }
    const width = `${canvas.width + 4}px`;
    if (canvas.width && canvas.style.maxWidth !== width) {
      canvas.style.maxWidth = width;
      stage.style.maxWidth = width; // the overlay covers the canvas only
    }
    if (msg) fpsCount += 1;
    if (!screen.painted) return;
    // for tests and benches: the last frame painted, how many, how long it took in all
    canvas.dataset.frame = String(screen.lastFrame);
    canvas.dataset.painted = String(screen.painted);
    canvas.dataset.paintMs = screen.paintMs.toFixed(1);
    canvas.dataset.transport = screen.transport;
  }
  screen.addView(canvas, copyFromScreen);
  copyFromScreen(null);
  model.on("change:status", showStatus);

  // --- input ------------------------------------------------------------------------
  // input carries this view's id and a sequence number: during an async cell ipykernel
  // dispatches comm messages as concurrent tasks, which can run out of order (seen: a key
  // typed before the one pressed ahead of it), so the kernel puts them back in order
  const viewId = Math.random().toString(36).slice(2);
  let seq = 0;
  function sendInput(content) {
    model.send({ ...content, view: viewId, seq: seq++ });
  }

  function guestXY(ev) {
    const rect = canvas.getBoundingClientRect();
    const border = 2;
    const w = rect.width - 2 * border;
    const h = rect.height - 2 * border;
    const x = Math.floor(((ev.clientX - rect.left - border) * canvas.width) / w);
    const y = Math.floor(((ev.clientY - rect.top - border) * canvas.height) / h);
    return [Math.min(Math.max(x, 0), canvas.width - 1),
            Math.min(Math.max(y, 0), canvas.height - 1)];
  }
  function onKey(ev) {
    ev.preventDefault(); // Tab, F5, Ctrl-W... go to the guest, not the browser
    ev.stopPropagation(); // nor to JupyterLab's shortcuts
    sendInput({ type: "key", code: ev.code, down: ev.type === "keydown" });
  }
  // moves at most every MOVE_INTERVAL_MS; the last one of a burst is sent when its turn
  // comes, so the pointer ends where the browser's did
  let lastMove = 0;
  let moveTimer = null;
  let nextMove = null;
  function sendMove() {
    moveTimer = null;
    if (!nextMove) return;
    lastMove = performance.now();
    sendInput({ type: "pointer", kind: "move", x: nextMove[0], y: nextMove[1], button: 0 });
    nextMove = null;
  }
  function onPointer(ev) {
    if (!canvas.width) return;
    const [x, y] = guestXY(ev);
    if (ev.type === "pointermove") {
      nextMove = [x, y];
      const wait = lastMove + MOVE_INTERVAL_MS - performance.now();
      if (wait <= 0) sendMove();
      else if (moveTimer === null) moveTimer = setTimeout(sendMove, wait);
      return;
    }
    ev.preventDefault();
    if (ev.type === "pointerdown") {
      canvas.focus();
      canvas.setPointerCapture(ev.pointerId); // its up comes here even off the canvas
    }
    nextMove = null; // the button event places the pointer itself
    sendInput({ type: "pointer", kind: ev.type === "pointerdown" ? "down" : "up", x, y,
                button: ev.button });
  }
  function onWheel(ev) {
    if (!focused || !canvas.width) return; // an unfocused canvas lets the page scroll
    ev.preventDefault();
    const [x, y] = guestXY(ev);
    sendInput({ type: "pointer", kind: "wheel", x, y, dy: ev.deltaY, mode: ev.deltaMode,
                button: 0 });
  }
  function onFocus() {
    focused = true;
    canvas.style.borderColor = "var(--jp-brand-color1, #1976d2)";
    showStatus();
  }
  function onBlur() {
    focused = false;
    canvas.style.borderColor = "transparent";
    sendInput({ type: "blur" });
    showStatus();
  }
  // the right button is the guest's: neither the browser's menu nor JupyterLab's (which
  // would open under the pointer and take the next events)
  canvas.dataset.jpSuppressContextMenu = "";
  const noMenu = (ev) => {
    ev.preventDefault();
    ev.stopPropagation();
  };
  canvas.addEventListener("keydown", onKey);
  canvas.addEventListener("keyup", onKey);
  canvas.addEventListener("pointermove", onPointer);
  canvas.addEventListener("pointerdown", onPointer);
  canvas.addEventListener("pointerup", onPointer);
  canvas.addEventListener("wheel", onWheel, { passive: false });
  canvas.addEventListener("contextmenu", noMenu);
  canvas.addEventListener("focus", onFocus);
  canvas.addEventListener("blur", onBlur);
  overlay.addEventListener("click", () => {
    if (model.get("status").endsWith(RECONNECTABLE)) model.send({ type: "reconnect" });
  });

  // --- the row under the canvas: special keys and the snapshot ------------------------
  function addButton(label, title, action) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.title = title;
    button.tabIndex = -1;
    button.style.cssText = BUTTON_CSS;
    // keep the keyboard focus (and the keys it holds) where it is
    button.addEventListener("mousedown", (ev) => ev.preventDefault());
    button.addEventListener("click", action);
    toolbar.append(button);
    return button;
  }
  for (const [label, combo] of model.get("special_keys")) {
    addButton(label, `send ${combo} to the guest`,
              () => sendInput({ type: "special", combo }));
  }
  // the snapshot: the kernel's exact screen (vm.display's pixels as a PNG); from the
  // canvas (exact once the screen is still) when the kernel does not answer in time
  let snapshots = 0;
  const waiting = new Map(); // request -> its fallback timer
  function canvasSnapshot(request, why) {
    canvas.toBlob((blob) => {
      if (blob) download(blob, `${model.get("vm_name")}-canvas.png`);
    }, "image/png");
    root.dataset.snapshot = `canvas: ${why}`;
  }
  addButton("Snapshot", "save the screen as a PNG", () => {
    const request = `${viewId}-${snapshots++}`;
    waiting.set(request, setTimeout(() => {
      waiting.delete(request);
      canvasSnapshot(request, "the kernel did not answer in time");
    }, SNAPSHOT_WAIT_MS));
    model.send({ type: "snapshot", request });
  });
  function onSnapshot(msg, buffers) {
    if (msg.type !== "snapshot" || !waiting.has(msg.request)) return;
    clearTimeout(waiting.get(msg.request));
    waiting.delete(msg.request);
    if (msg.error || !buffers.length) {
      canvasSnapshot(msg.request, msg.error || "no picture");
      return;
    }
    download(new Blob([buffers[0]], { type: "image/png" }), msg.name);
    root.dataset.snapshot = msg.name;
  }
  model.on("msg:custom", onSnapshot);

  showStatus();
  model.send({ type: "hello" });
  return () => {
    clearInterval(fpsTimer);
    if (moveTimer !== null) clearTimeout(moveTimer);
    for (const timer of waiting.values()) clearTimeout(timer);
    screen.removeView(canvas);
    model.off("change:status", showStatus);
    model.off("msg:custom", onSnapshot);
    if (focused) sendInput({ type: "blur" });
    model.send({ type: "bye" });
  };
}

export default { initialize, render };
