// The needle editor's view (anywidget ESM, no build step). The screenshot is drawn on a
// <canvas> with the areas over it (match blue, exclude gray, ocr yellow, the click point a
// green cross). Dragging draws an area of the selected type, a click without a drag sets
// the click point; both only change the model's traits (areas, click), which the kernel
// reads when Save asks it ({type: "save"}) to write the needle. Coordinates are screen
// pixels: the canvas may be shown smaller than the screen, so pointer positions are scaled.

const COLOURS = { match: "#2878ff", exclude: "#969696", ocr: "#ffd200" };
const DRAG_MIN = 3; // a press that moved less than this many screen pixels is a click

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

function render({ model, el }) {
  const canvas = element("canvas", { className: "atp-needle-canvas" });
  canvas.style.cssText = "max-width: 100%; cursor: crosshair; image-rendering: pixelated;";
  const ctx = canvas.getContext("2d");
  const picture = new Image();
  let drag = null; // {x0, y0, x1, y1} in screen pixels while the button is down

  const typeSelect = element("select", { className: "atp-needle-type" },
    ["match", "exclude", "ocr"].map((t) => element("option", { value: t, textContent: t })));
  const nameInput = element("input", { className: "atp-needle-name", placeholder: "name" });
  const tagsInput = element("input", { className: "atp-needle-tags",
                                       placeholder: "tags, comma-separated" });
  const saveButton = element("button", { className: "atp-needle-save", textContent: "Save" });
  const list = element("ol", { className: "atp-needle-areas" });
  const clickLine = element("div", { className: "atp-needle-click" });
  const status = element("div", { className: "atp-needle-status" });
  const bar = element("div", {}, [
    element("label", { textContent: "area type " }, [typeSelect]), " ",
    element("label", { textContent: " name " }, [nameInput]), " ",
    element("label", { textContent: " tags " }, [tagsInput]), " ", saveButton]);
  el.append(bar, canvas, list, clickLine, status);

  function loadPicture() {
    const png = model.get("screen_png");
    const bytes = png instanceof DataView ? png.buffer : png;
    const url = URL.createObjectURL(new Blob([bytes], { type: "image/png" }));
    picture.onload = () => { URL.revokeObjectURL(url); draw(); };
    picture.src = url;
  }

  function box(area, colour, dashed) {
    ctx.save();
    ctx.strokeStyle = colour;
    ctx.lineWidth = 2;
    if (dashed) ctx.setLineDash([4, 3]);
    ctx.strokeRect(area.x + 1, area.y + 1, area.width - 2, area.height - 2);
    ctx.restore();
  }

  function draw() {
    canvas.width = model.get("screen_width");
    canvas.height = model.get("screen_height");
    if (picture.complete && picture.naturalWidth) ctx.drawImage(picture, 0, 0);
    for (const area of model.get("areas")) box(area, COLOURS[area.type] || "#f00", false);
    if (drag) box(normalised(drag), COLOURS[typeSelect.value], true);
    const click = model.get("click");
    if (click.length === 2) {
      const [x, y] = click;
      ctx.save();
      ctx.strokeStyle = "#00dc00";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(x - 6, y); ctx.lineTo(x + 6, y);
      ctx.moveTo(x, y - 6); ctx.lineTo(x, y + 6);
      ctx.stroke();
      ctx.restore();
    }
  }

  function normalised(d) {
    const x = Math.max(0, Math.min(d.x0, d.x1));
    const y = Math.max(0, Math.min(d.y0, d.y1));
    const right = Math.min(canvas.width, Math.max(d.x0, d.x1));
    const bottom = Math.min(canvas.height, Math.max(d.y0, d.y1));
    return { x, y, width: right - x, height: bottom - y };
  }

  function screenPoint(event) {
    const rect = canvas.getBoundingClientRect();
    return [Math.round((event.clientX - rect.left) * canvas.width / rect.width),
            Math.round((event.clientY - rect.top) * canvas.height / rect.height)];
  }

  function listAreas() {
    list.replaceChildren(...model.get("areas").map((area, i) => {
      const remove = element("button", { textContent: "remove",
                                         className: "atp-needle-remove" });
      remove.onclick = () => {
        model.set("areas", model.get("areas").filter((_, j) => j !== i));
        model.save_changes();
      };
      return element("li", {}, [
        `${area.type} ${area.width}x${area.height} at ${area.x},${area.y} `, remove]);
    }));
    const click = model.get("click");
    clickLine.textContent = click.length === 2
      ? `click point: ${click[0]},${click[1]}` : "click point: none (click on the screen)";
  }

  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    const [x, y] = screenPoint(event);
    drag = { x0: x, y0: y, x1: x, y1: y };
    canvas.setPointerCapture(event.pointerId);
    event.preventDefault();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!drag) return;
    [drag.x1, drag.y1] = screenPoint(event);
    draw();
  });
  canvas.addEventListener("pointerup", (event) => {
    if (!drag) return;
    [drag.x1, drag.y1] = screenPoint(event);
    const area = normalised(drag);
    drag = null;
    if (area.width < DRAG_MIN && area.height < DRAG_MIN) {
      model.set("click", [area.x, area.y]);
    } else if (area.width >= 1 && area.height >= 1) {
      model.set("areas", [...model.get("areas"), { ...area, type: typeSelect.value,
                                                   match: 96, margin: 50 }]);
    }
    model.save_changes();
    draw();
  });

  typeSelect.value = model.get("area_type");
  typeSelect.onchange = () => { model.set("area_type", typeSelect.value); model.save_changes(); };
  nameInput.value = model.get("name");
  nameInput.oninput = () => { model.set("name", nameInput.value); model.save_changes(); };
  tagsInput.value = model.get("tags");
  tagsInput.oninput = () => { model.set("tags", tagsInput.value); model.save_changes(); };
  saveButton.onclick = () => {
    // the state goes with the message: ipywidgets may hold back trait updates (its message
    // throttle) while a custom message goes at once, so Save could overtake the last edit
    model.set("name", nameInput.value);
    model.set("tags", tagsInput.value);
    model.save_changes();
    model.send({ type: "save", state: { name: nameInput.value, tags: tagsInput.value,
                                        areas: model.get("areas"), click: model.get("click") } });
  };

  const onAreas = () => { listAreas(); draw(); };
  const onName = () => { if (nameInput.value !== model.get("name")) nameInput.value = model.get("name"); };
  const onTags = () => { if (tagsInput.value !== model.get("tags")) tagsInput.value = model.get("tags"); };
  const onStatus = () => { status.textContent = model.get("status"); };
  model.on("change:areas", onAreas);
  model.on("change:click", onAreas);
  model.on("change:screen_png", loadPicture);
  model.on("change:name", onName);
  model.on("change:tags", onTags);
  model.on("change:status", onStatus);
  listAreas();
  onStatus();
  loadPicture();
  return () => {
    model.off("change:areas", onAreas);
    model.off("change:click", onAreas);
    model.off("change:screen_png", loadPicture);
    model.off("change:name", onName);
    model.off("change:tags", onTags);
    model.off("change:status", onStatus);
  };
}

export default { render };
