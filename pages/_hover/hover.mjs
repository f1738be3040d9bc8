// Hover thumbnails for a plotly map of hdl-studio: a Streamlit custom component v2.
//
// Components v2 live in the page's own document (no iframe), so this one finds the plotly
// chart of the Streamlit element whose key it is given (`.st-key-<key> .js-plotly-plot`)
// and listens to plotly's own hover events on it. The hovered point's id is the first
// entry of its customdata; its thumbnail (a data URI sent by Python) is shown beside the
// pointer. The chart may be redrawn at any time (a fragment rerun, a new figure), so the
// listener is attached again whenever the chart element changes.

/** The id a hovered point carries: customdata[0], or customdata itself. */
export function pointId(point) {
  let value = point?.customdata;
  if (value && typeof value === "object") value = Array.isArray(value) ? value[0] : (value[0] ?? value["0"]);
  const id = Number(value);
  return Number.isFinite(id) ? Math.round(id) : null;
}

/** Where the tooltip goes: right of and below the pointer, kept inside the window. */
export function placeTooltip(x, y, width, height, viewW, viewH, gap = 16) {
  let left = x + gap;
  let top = y + gap;
  if (left + width > viewW) left = Math.max(0, x - gap - width);
  if (top + height > viewH) top = Math.max(0, y - gap - height);
  return { left, top };
}

const attached = new WeakMap();   // plot element -> the state that handles it

function attach(plot, state) {
  if (attached.get(plot) === state || typeof plot.on !== "function") return;
  attached.set(plot, state);
  plot.on("plotly_hover", (event) => state.show(event));
  plot.on("plotly_unhover", () => state.hide());
}

class HoverState {
  constructor(root) {
    this.root = root;
    this.tip = root.ownerDocument.createElement("div");
    this.tip.className = "hover-tip";
    this.img = root.ownerDocument.createElement("img");
    this.caption = root.ownerDocument.createElement("div");
    this.caption.className = "hover-caption";
    this.tip.append(this.img, this.caption);
    root.append(this.tip);
    this.thumbs = {};
    this.captions = {};
  }

  update(data) {
    this.thumbs = data?.thumbs || {};
    this.captions = data?.captions || {};
    this.size = data?.size || 96;
    this.key = data?.chart_key;
  }

  show(event) {
    const point = event?.points?.[0];
    const id = pointId(point);
    const uri = id === null ? undefined : this.thumbs[id];
    if (!uri) return this.hide();
    this.img.src = uri;
    this.img.width = this.size;
    this.caption.textContent = this.captions[id] ?? "";   // text, never markup
    const mouse = event.event || {};
    const view = this.root.ownerDocument.defaultView;
    const where = placeTooltip(mouse.clientX ?? 0, mouse.clientY ?? 0, this.size + 12,
                               this.size + 40, view.innerWidth, view.innerHeight);
    this.tip.style.left = `${where.left}px`;
    this.tip.style.top = `${where.top}px`;
    this.tip.classList.add("shown");
    this.tip.dataset.id = String(id);
  }

  hide() {
    this.tip.classList.remove("shown");
    delete this.tip.dataset.id;
  }

  find() {
    if (!this.key) return;
    const doc = this.root.ownerDocument;
    const plot = doc.querySelector(`.st-key-${CSS.escape(this.key)} .js-plotly-plot`);
    if (plot) attach(plot, this);
  }
}

const states = new WeakMap();     // parentElement -> HoverState

export default function hoverThumbnails(component) {
  let state = states.get(component.parentElement);
  if (!state) {
    state = new HoverState(component.parentElement);
    states.set(component.parentElement, state);
    // the chart is drawn (and redrawn) after this component: look for it now and then
    state.timer = setInterval(() => state.find(), 400);
  }
  state.update(component.data);
  state.find();
  return () => {
    clearInterval(state.timer);
    states.delete(component.parentElement);
  };
}
