// The needle editor's view (anywidget ESM, no build step). The screenshot is drawn on a
// <canvas> with the areas over it (match blue, exclude gray, ocr yellow, the click point a
// green cross). Dragging draws an area of the selected type, a click without a drag sets
// the click point; both only change the model's traits (areas, click), which the kernel
// reads when Save asks it ({type: "save"}) to write the needle. Each match/ocr area's row
// has its match percentage and margin to edit: a value out of range is marked here and
// kept as typed, and the kernel refuses it on Save (the status line says why). Coordinates
// are screen pixels: the canvas may be shown smaller than the screen, so pointer positions
// are scaled.

const COLOURS = { match: "#2878ff", exclude: "#969696", ocr: "#ffd200" };
const DRAG_MIN = 3; // a press that moved less than this many screen pixels is a click
// what an area's number fields accept (the kernel checks the same on Save)
const LEVELS = {
  match: { label: " match % ", min: 0, max: 100, whole: false, what: "a percentage 0-100" },
  margin: { label: " margin ", min: 0, max: Infinity, whole: true,
            what: "a whole number of pixels >= 0" },
};

// a typed number, or the text itself when it is none (the kernel names it when refusing)
function typed(text) {
  const value = Number(text);
  return text.trim() !== "" && Number.isFinite(value) ? value : text;
}

function levelProblem(field, value) {
  const rule = LEVELS[field];
  const ok = typeof value === "number" && value >= rule.min && value <= rule.max
    && (!rule.whole || Number.isInteger(value));
  return ok ? "" : `${field} ${JSON.stringify(value)}: ${rule.what}`;
}

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
  const propertiesInput = element("input", { className: "atp-needle-properties",
                                             placeholder: "e.g. colour, workaround" });
  const saveButton = element("button", { className: "atp-needle-save", textContent: "Save" });
  const list = element("ol", { className: "atp-needle-areas" });
  const clickLine = element("div", { className: "atp-needle-click" });
  const status = element("div", { className: "atp-needle-status" });
  const bar = element("div", {}, [
    element("label", { textContent: "area type " }, [typeSelect]), " ",
    element("label", { textContent: " name " }, [nameInput]), " ",
    element("label", { textContent: " tags " }, [tagsInput]), " ",
    element("label", { textContent: " properties " }, [propertiesInput]), " ", saveButton]);
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

  function levelInput(i, field) {
    const input = element("input", { className: `atp-needle-${field}`, type: "number",
                                     min: String(LEVELS[field].min),
                                     step: LEVELS[field].whole ? "1" : "any" });
    if (Number.isFinite(LEVELS[field].max)) input.max = String(LEVELS[field].max);
    input.style.width = "5em";
    input.oninput = () => {
      const areas = model.get("areas").map((a, j) => (j === i
        ? { ...a, [field]: typed(input.value) } : a));
      model.set("areas", areas);
      model.save_changes();
    };
    return input;
  }

  function showLevels(areas) {
    list.querySelectorAll("li").forEach((item, i) => {
      for (const field of Object.keys(LEVELS)) {
        const input = item.querySelector(`.atp-needle-${field}`);
        if (!input) continue;
        const value = areas[i][field];
        // never rewrite the field being typed in: its text may not be a number yet
        if (document.activeElement !== input) input.value = String(value);
        const problem = levelProblem(field, value);
        input.classList.toggle("atp-invalid", problem !== "");
        input.style.outline = problem ? "2px solid #e00" : "";
        input.title = problem;
      }
    });
  }

  let listed = null; // the areas' types and places the list shows
  function listAreas() {
    const areas = model.get("areas");
    const shape = JSON.stringify(areas.map((a) => [a.type, a.x, a.y, a.width, a.height]));
    if (shape !== listed) { // rows are rebuilt only when areas come or go, not per keystroke
      listed = shape;
      list.replaceChildren(...areas.map((area, i) => {
        const remove = element("button", { textContent: "remove",
                                           className: "atp-needle-remove" });
        remove.onclick = () => {
          model.set("areas", model.get("areas").filter((_, j) => j !== i));
          model.save_changes();
        };
        // os-autoinst reads no match or margin of an exclude area
        const levels = area.type === "exclude" ? [] : Object.keys(LEVELS).map(
          (field) => element("label", { textContent: LEVELS[field].label },
                             [levelInput(i, field)]));
        return element("li", {}, [
          `${area.type} ${area.width}x${area.height} at ${area.x},${area.y} `, ...levels, " ",
          remove]);
      }));
    }
    showLevels(areas);
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
  propertiesInput.value = model.get("properties");
  propertiesInput.oninput = () => {
    model.set("properties", propertiesInput.value);
    model.save_changes();
  };
  saveButton.onclick = () => {
    // the state goes with the message: ipywidgets may hold back trait updates (its message
    // throttle) while a custom message goes at once, so Save could overtake the last edit
    model.set("name", nameInput.value);
    model.set("tags", tagsInput.value);
    model.set("properties", propertiesInput.value);
    model.save_changes();
    model.send({ type: "save", state: { name: nameInput.value, tags: tagsInput.value,
                                        properties: propertiesInput.value,
                                        areas: model.get("areas"), click: model.get("click") } });
  };

  const onAreas = () => { listAreas(); draw(); };
  const onName = () => { if (nameInput.value !== model.get("name")) nameInput.value = model.get("name"); };
  const onTags = () => { if (tagsInput.value !== model.get("tags")) tagsInput.value = model.get("tags"); };
  const onProperties = () => {
    if (propertiesInput.value !== model.get("properties")) {
      propertiesInput.value = model.get("properties");
    }
  };
  const onStatus = () => { status.textContent = model.get("status"); };
  model.on("change:areas", onAreas);
  model.on("change:click", onAreas);
  model.on("change:screen_png", loadPicture);
  model.on("change:name", onName);
  model.on("change:tags", onTags);
  model.on("change:properties", onProperties);
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
    model.off("change:properties", onProperties);
    model.off("change:status", onStatus);
  };
}

export default { render };
