// Hover thumbnails for a plotly map of hdl-studio: a Streamlit custom component v2.
//
// Components v2 live in the page's own document (no iframe), so this one finds the plotly
// chart of the Streamlit element whose key it is given (`.st-key-<key> .js-plotly-plot`)
// and listens to plotly's own hover events on it. The hovered point's id is the first
// entry of its customdata. Thumbnails come on demand: a point whose thumbnail is not here
// yet is asked for through the component state `wanted` once the pointer rests on it
// (`AskLater`: a request and a click must not travel together); Python answers with that
// one (a data URI), and every thumbnail received is kept, so a point is asked for once. The
// chart may be redrawn at any time (a fragment rerun, a new figure), so the listener is
// attached again whenever the chart element changes.

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

/** Thumbnails received so far, and the one point to ask for next (null: none). */
export class ThumbCache {
  constructor(limit = 2000) {
    this.limit = limit;
    this.thumbs = new Map();
    this.captions = new Map();
    this.asked = null;
  }

  /** Keep what Python sent (oldest dropped past `limit`). */
  add(thumbs, captions) {
    for (const [id, uri] of Object.entries(thumbs || {})) {
      this.thumbs.set(Number(id), uri);
      this.captions.set(Number(id), (captions || {})[id] ?? "");
      if (this.asked === Number(id)) this.asked = null;
      if (this.thumbs.size > this.limit) {
        const oldest = this.thumbs.keys().next().value;
        this.thumbs.delete(oldest);
        this.captions.delete(oldest);
      }
    }
  }

  /** The id to ask Python for when `id` is hovered: null when it is here or already asked. */
  request(id) {
    if (id === null || this.thumbs.has(id) || this.asked === id) return null;
    this.asked = id;
    return id;
  }
}

/**
 * Sends a hovered point's request once the pointer has rested on it `delay` ms. A request
 * sent as the point is clicked reaches Streamlit in the same batch as the click, and a
 * batch reruns one fragment only: this one's, so the click was not seen until the next
 * rerun. A press, a click or leaving the point cancels the wait.
 */
export class AskLater {
  constructor(send, delay = 150, timers = globalThis) {
    this.send = send;
    this.delay = delay;
    this.timers = timers;
    this.timer = null;
  }

  want(id) {
    this.cancel();
    this.timer = this.timers.setTimeout(() => {
      this.timer = null;
      this.send(id);
    }, this.delay);
  }

  cancel() {
    if (this.timer !== null) this.timers.clearTimeout(this.timer);
    this.timer = null;
  }
}

const attached = new WeakMap();   // plot element -> the state that handles it

function attach(plot, state) {
  if (attached.get(plot) === state || typeof plot.on !== "function") return;
  attached.set(plot, state);
  plot.on("plotly_hover", (event) => state.show(event));
  plot.on("plotly_unhover", () => state.hide());
  plot.on("plotly_click", () => state.later.cancel());
  plot.addEventListener("mousedown", () => state.later.cancel(), true);
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
    this.cache = new ThumbCache();
    this.hovered = null;     // id under the pointer
    this.where = { x: 0, y: 0 };
    this.later = new AskLater((id) => {
      const ask = this.cache.request(id);
      if (ask !== null) this.component?.setStateValue("wanted", ask);
    });
  }

  update(component) {
    const data = component.data || {};
    this.component = component;
    this.cache.add(data.thumbs, data.captions);
    this.size = data.size || 96;
    this.key = data.chart_key;
    if (this.hovered !== null && this.cache.thumbs.has(this.hovered)) this.draw();
  }

  show(event) {
    const id = pointId(event?.points?.[0]);
    if (id === null) return this.hide();
    const mouse = event.event || {};
    this.where = { x: mouse.clientX ?? 0, y: mouse.clientY ?? 0 };
    this.hovered = id;
    if (this.cache.thumbs.has(id)) return this.draw();
    this.tip.classList.remove("shown");
    this.later.want(id);
  }

  draw() {
    const id = this.hovered;
    this.img.src = this.cache.thumbs.get(id);
    this.img.width = this.size;
    this.caption.textContent = this.cache.captions.get(id) ?? "";   // text, never markup
    const view = this.root.ownerDocument.defaultView;
    const spot = placeTooltip(this.where.x, this.where.y, this.size + 12, this.size + 40,
                              view.innerWidth, view.innerHeight);
    this.tip.style.left = `${spot.left}px`;
    this.tip.style.top = `${spot.top}px`;
    this.tip.classList.add("shown");
    this.tip.dataset.id = String(id);
  }

  hide() {
    this.later.cancel();
    this.hovered = null;
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
  state.update(component);
  state.find();
  return () => {
    clearInterval(state.timer);
    state.later.cancel();
    states.delete(component.parentElement);
  };
}
