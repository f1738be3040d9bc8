// A plotly chart of hdl-studio redrawn in place: a Streamlit custom component v2.
//
// st.plotly_chart makes a new chart for every new figure. This component keeps one chart
// per mounted element and hands every figure Python sends to Plotly.react, which redraws
// only what changed (app_pages/_plot.py says why). Figures that come while one is being drawn
// are not queued: only the newest is drawn next. Traces sent as the same JSON text as the
// previous figure's are passed as the same objects, so plotly skips recomputing them.
//
// plotly.js is Streamlit's own (window.Plotly, set when its chart code loads); when no
// st.plotly_chart has loaded it yet, the component imports that code from the address
// Python gives. Clicks send the clicked point's id (customdata[0]) as the trigger "click".

/** The id a clicked point carries: customdata[0], or customdata itself. */
export function pointId(point) {
  let value = point?.customdata;
  if (value && typeof value === "object") value = Array.isArray(value) ? value[0] : (value[0] ?? value["0"]);
  const id = Number(value);
  return Number.isFinite(id) ? Math.round(id) : null;
}

/** "#rrggbb", "#rgb" or "rgb(r, g, b)" as "rgba(r,g,b,alpha)"; null for anything else. */
export function withAlpha(colour, alpha) {
  const text = String(colour || "").trim();
  let rgb = null;
  const hex = text.match(/^#([0-9a-f]{3}|[0-9a-f]{6})$/i);
  if (hex) {
    const h = hex[1].length === 3 ? [...hex[1]].map((c) => c + c).join("") : hex[1];
    rgb = [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16));
  } else {
    const found = text.match(/^rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)/i);
    if (found) rgb = found.slice(1, 4).map(Number);
  }
  return rgb ? `rgba(${rgb.join(",")},${alpha})` : null;
}

/**
 * The layout drawn: transparent backgrounds, the theme's text colour and font, and grid
 * lines a faint shade of that text colour (what st.plotly_chart's Streamlit theme does, so
 * a dark theme gets no white grid), unless the figure sets them; the width follows the page.
 */
export function themedLayout(layout, theme = {}) {
  const out = { ...layout };
  if (out.paper_bgcolor === undefined) out.paper_bgcolor = "rgba(0,0,0,0)";
  if (out.plot_bgcolor === undefined) out.plot_bgcolor = "rgba(0,0,0,0)";
  const font = {};
  if (theme.color) font.color = theme.color;
  if (theme.family) font.family = theme.family;
  out.font = { ...font, ...(layout.font || {}) };
  const grid = withAlpha(theme.color, 0.15);
  for (const name of Object.keys(out)) {
    if (grid && /^[xy]axis\d*$/.test(name) && out[name] && out[name].gridcolor === undefined) {
      out[name] = { ...out[name], gridcolor: grid };
    }
  }
  delete out.width;
  out.autosize = true;
  return out;
}

/**
 * Keeps the parsed traces of the last figure: the same JSON text gives the same objects.
 */
export class TraceCache {
  constructor() {
    this.text = null;
    this.data = null;
  }

  get(text) {
    if (text !== this.text) {
      this.data = JSON.parse(text || "[]");
      this.text = text;
    }
    return this.data;
  }
}

let loading = null;

/** window.Plotly, once Streamlit's plotly code has loaded (importing it from `url` if need be). */
function plotly(url, view) {
  if (view.Plotly) return Promise.resolve(view.Plotly);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      if (url) import(new URL(url, view.location.href).href).catch(() => {});
      const started = Date.now();
      const timer = setInterval(() => {
        if (view.Plotly) { clearInterval(timer); resolve(view.Plotly); }
        else if (Date.now() - started > 60_000) {
          clearInterval(timer);
          loading = null;
          reject(new Error("plotly.js did not load"));
        }
      }, 50);
    });
  }
  return loading;
}

class LivePlot {
  constructor(root) {
    this.root = root;
    const doc = root.ownerDocument;
    this.box = root.querySelector(".live-plot") || root.appendChild(doc.createElement("div"));
    this.div = doc.createElement("div");
    this.box.append(this.div);
    this.traces = new TraceCache();
    this.next = null;       // the newest figure not drawn yet
    this.busy = false;
    this.hooked = false;
    this.cleanup = () => {
      this.gone = true;
      this.Plotly?.purge(this.div);
    };
  }

  update(component) {
    this.component = component;
    this.next = component.data || {};
    if (!this.busy) this.drawAll();
  }

  theme() {
    const css = this.root.ownerDocument.defaultView.getComputedStyle(this.root);
    return { color: css.getPropertyValue("--st-text-color").trim(),
             family: css.getPropertyValue("--st-font").trim() };
  }

  async drawAll() {
    this.busy = true;
    try {
      while (this.next && !this.gone) {
        const figure = this.next;
        this.next = null;
        const view = this.root.ownerDocument.defaultView;
        this.Plotly = await plotly(figure.plotly, view);
        const layout = themedLayout(JSON.parse(figure.layout || "{}"), this.theme());
        if (layout.height) this.div.style.height = `${layout.height}px`;
        const config = { ...(figure.config || {}), responsive: true };
        await this.Plotly.react(this.div, this.traces.get(figure.data), layout, config);
        this.error?.remove();
        this.error = null;
        if (!this.hooked) {
          this.hooked = true;
          this.div.on("plotly_click", (event) => {
            const id = pointId(event?.points?.[0]);
            if (id !== null) this.component?.setTriggerValue("click", id);
          });
        }
      }
    } catch (err) {
      if (!this.error) {
        this.error = this.root.ownerDocument.createElement("div");
        this.error.className = "live-plot-error";
        this.box.append(this.error);
      }
      this.error.textContent = `The chart could not be drawn: ${err?.message || err}. Reload the page.`;
    } finally {
      this.busy = false;
    }
  }
}

const plots = new WeakMap();      // parentElement -> LivePlot

export default function livePlot(component) {
  let plot = plots.get(component.parentElement);
  if (!plot) {
    plot = new LivePlot(component.parentElement);
    plots.set(component.parentElement, plot);
  }
  plot.update(component);
  return () => {
    plot.cleanup();
    plots.delete(component.parentElement);
  };
}
