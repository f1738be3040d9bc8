// Keyboard review widget of hdl-studio: a Streamlit custom component v2 (no iframe).
//
// The top half is pure logic (exported, unit-tested with `node --test` in
// widget.test.mjs): the key map, what a key does, cursor moves, selection, local undo
// and the numbered action log. The bottom half draws it with DOM calls only: every
// label, class name, reason and file name goes through textContent, never innerHTML.
//
// Contract with app_pages/_review_keys.py (data in, state "actions" out) is documented
// there; in short: the widget advances locally at once and keeps a cumulative,
// monotonically numbered action log in component state, so Python can lose no action
// when Streamlit coalesces reruns.

// ----------------------------------------------------------------------------- keys

export const NUMBER_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0"];
// Single keys with a meaning of their own; a class shortcut never starts with one.
export const RESERVED_LETTERS = new Set(["u"]);

/** The letters a–z of a class name, lower case, accents dropped ("Éclair 2" -> "eclair"). */
export function letterForm(name) {
  return String(name ?? "")
    .normalize("NFKD")
    .toLowerCase()
    .replace(/[^a-z]/g, "");
}

/**
 * Keyboard shortcuts of the classes, in their order.
 *
 * Rules (shown to the reviewer under `?`):
 * - a class named by a single digit gets that digit's key; the other number keys, 1–9
 *   then 0, pick the other classes in order (the first ten in all);
 * - each class's letters are the shortest start of its name (letters a–z only, lower
 *   case, accents dropped) that starts no other class name. No shortcut is the start of
 *   another, so a shortcut acts as soon as its last letter is typed;
 * - a class whose letter name is empty, starts with a reserved key (u = undo), or is the
 *   start of another class name ("cat" beside "caterpillar") has no letters: pick it by
 *   number or with `/` (search by name).
 */
export function buildKeymap(names) {
  const forms = names.map(letterForm);
  const usable = forms.map((f) => f.length > 0 && !RESERVED_LETTERS.has(f[0]));
  // A class named by a single digit ("3" in the digits demo) gets that digit; the other
  // number keys go to the other classes in order.
  const own = names.map((name) => {
    const text = String(name).trim();
    return NUMBER_KEYS.includes(text) ? text : null;
  });
  const taken = new Set(own.filter((key, i) => key !== null && own.indexOf(key) === i));
  const free = NUMBER_KEYS.filter((key) => !taken.has(key));
  let next = 0;
  const numbers = names.map((_, i) => {
    if (own[i] !== null && own.indexOf(own[i]) === i) return own[i];
    return next < free.length ? free[next++] : null;
  });
  return names.map((name, index) => {
    let letters = null;
    if (usable[index]) {
      const form = forms[index];
      for (let end = 1; end <= form.length && letters === null; end++) {
        const prefix = form.slice(0, end);
        const clash = forms.some((other, j) => j !== index && usable[j] && other.startsWith(prefix));
        if (!clash) letters = prefix;
      }
    }
    return { index, name: String(name), number: numbers[index], letters };
  });
}

/** Classes whose name contains `query` (case-insensitive): names starting with it first. */
export function searchClasses(names, query) {
  const q = String(query ?? "").trim().toLowerCase();
  const hits = [];
  names.forEach((name, index) => {
    const at = String(name).toLowerCase().indexOf(q);
    if (at >= 0) hits.push({ index, at });
  });
  hits.sort((a, b) => (a.at !== 0) - (b.at !== 0) || a.index - b.index);
  return hits.map((h) => h.index);
}

const ARROWS = { ArrowLeft: "left", ArrowRight: "right", ArrowUp: "up", ArrowDown: "down", Home: "home", End: "end" };

// Commands a held-down key must not repeat: holding "3" would relabel a run of images.
const NO_REPEAT = new Set(["assign", "confirm", "undo", "letters", "help", "search", "page"]);

/**
 * What a key press means, as a command object, or null when the widget leaves the key
 * alone (modifier shortcuts of the browser, Tab, keys nobody asked for). A repeated key
 * (held down) only moves; IME composition is left alone.
 *
 * `ev` is {key, shiftKey, ctrlKey, metaKey, altKey, repeat, isComposing}; `ctx` is
 * {prefix, helpOpen}.
 */
export function keyCommand(ev, ctx = {}) {
  if (ev.isComposing) return null;
  const command = commandOf(ev, ctx);
  return command && ev.repeat && NO_REPEAT.has(command.type) ? { type: "noop" } : command;
}

function commandOf(ev, ctx) {
  const key = ev.key;
  const prefix = ctx.prefix || "";
  if ((ev.ctrlKey || ev.metaKey) && !ev.altKey && (key === "z" || key === "Z") && !ev.shiftKey) {
    return { type: "undo" };
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return null;
  if (key === "?") return { type: "help" };
  if (key === "Escape") return { type: "escape" };
  if (ctx.helpOpen) return { type: "noop" };
  if (key === "Enter") return { type: "confirm" };
  if (key in ARROWS) return { type: "move", move: ARROWS[key], extend: !!ev.shiftKey };
  if (key === "PageDown") return { type: "page", direction: 1 };
  if (key === "PageUp") return { type: "page", direction: -1 };
  if (key === " ") return { type: "toggle" };
  if (key === "/") return { type: "search" };
  if (key === "Backspace") return prefix ? { type: "letters", prefix: prefix.slice(0, -1) } : null;
  if (NUMBER_KEYS.includes(key)) {
    // the class this number key belongs to (`buildKeymap`); by position without a keymap
    const entry = ctx.keymap?.find((k) => k.number === key);
    const classIndex = entry ? entry.index : (ctx.keymap ? -1 : NUMBER_KEYS.indexOf(key));
    return classIndex >= 0 ? { type: "assign", classIndex } : { type: "ignored", key };
  }
  if (key.length === 1) {
    const letter = key.toLowerCase();
    if (!prefix && RESERVED_LETTERS.has(letter)) return { type: "undo" };
    if (letter >= "a" && letter <= "z") return { type: "letters", prefix: prefix + letter };
    return { type: "ignored", key };
  }
  return null;
}

/** Where the cursor goes: `move` is left/right/up/down/home/end; grids move by rows. */
export function moveIndex(index, count, move, columns = 1) {
  if (count <= 0) return 0;
  const cols = Math.max(1, columns | 0);
  let next = index;
  if (move === "left") next = index - 1;
  else if (move === "right") next = index + 1;
  else if (move === "up") next = index - cols;
  else if (move === "down") next = index + cols;
  else if (move === "home") next = 0;
  else if (move === "end") next = count - 1;
  return Math.min(count - 1, Math.max(0, next));
}

/** Ids from position a to position b (either order), inclusive, in tile order. */
export function rangeIds(order, a, b) {
  const lo = Math.max(0, Math.min(a, b));
  const hi = Math.min(order.length - 1, Math.max(a, b));
  return order.slice(lo, hi + 1);
}

/** Black or white text for a tag of this colour (#rgb, #rrggbb, rgb() or rgba()). */
export function textColourOn(colour) {
  const rgb = parseColour(colour);
  if (!rgb) return "#ffffff";
  const [r, g, b] = rgb.map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  });
  const luminance = 0.2126 * r + 0.7152 * g + 0.0722 * b;
  // WCAG contrast against white vs against black
  return (1.05 / (luminance + 0.05)) >= ((luminance + 0.05) / 0.05) ? "#ffffff" : "#000000";
}

export function parseColour(colour) {
  const text = String(colour ?? "").trim();
  let m = /^#([0-9a-f]{3})$/i.exec(text);
  if (m) return [...m[1]].map((c) => parseInt(c + c, 16));
  m = /^#([0-9a-f]{6})$/i.exec(text);
  if (m) return [0, 2, 4].map((i) => parseInt(m[1].slice(i, i + 2), 16));
  m = /^rgba?\(\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)/i.exec(text);
  if (m) return [m[1], m[2], m[3]].map(Number);
  return null;
}

// ----------------------------------------------------------------------------- model

export const UNLABELED = "no label";
const GREY = "#8c8c8c";

/**
 * The review state of one widget: tiles from Python, what the reviewer did since, the
 * cursor and the selection. Methods that act return the wire action they logged (or
 * null); `wireLog()` is what goes to Python as state "actions".
 */
export class ReviewModel {
  constructor() {
    this.mode = "one";
    this.classes = [];          // [{name, colour}]
    this.keymap = [];
    this.images = [];
    this.tiles = [];            // as sent by Python
    this.order = [];            // tile ids in order
    this.byId = new Map();      // id -> tile
    this.view = new Map();      // id -> {label, confirmed}: what the reviewer sees
    this.cursor = 0;
    this.anchor = null;
    this.selected = new Set();
    this.seq = 0;               // last seq issued
    this.applied = 0;           // Python's tiles already show every action up to this seq
    this.log = [];              // wire actions with seq > applied, oldest first
    this.history = [];          // full records of assign/confirm not undone (undo stack)
    this.prefix = "";
    this.helpOpen = false;
    this.message = "";
    this.pendingPage = 0;       // +1/-1 after a page request, until Python answers it
    this.pendingPageSeq = 0;
    this.signature = "";
  }

  /** Take new data from Python; keep the cursor on the same image id when it is there. */
  load(data) {
    const d = data || {};
    const cursorId = this.order.length ? this.order[this.cursor] : null;
    this.mode = d.mode === "grid" ? "grid" : "one";
    const classes = Array.isArray(d.classes) ? d.classes : [];
    const namesBefore = this.classes.map((c) => c.name).join("\u0000");
    this.classes = classes.map((c) => ({ name: String(c.name), colour: String(c.colour || GREY) }));
    if (this.classes.map((c) => c.name).join("\u0000") !== namesBefore || !this.keymap.length) {
      this.keymap = buildKeymap(this.classes.map((c) => c.name));
    }
    this.images = Array.isArray(d.images) ? d.images : [];
    this.tiles = Array.isArray(d.tiles) ? d.tiles : [];
    const newOrder = this.tiles.map((t) => t.id);
    const sameTiles = newOrder.length === this.order.length && newOrder.every((id, i) => id === this.order[i]);
    this.order = newOrder;
    this.byId = new Map(this.tiles.map((t) => [t.id, t]));
    this.seq = Math.max(this.seq, Number(d.floor) || 0);
    this.applied = Math.max(this.applied, Number(d.applied) || 0);
    this.log = this.log.filter((a) => a.seq > this.applied);
    this.rebuildView();
    const direction = this.pendingPage;
    if (!sameTiles) {
      this.selected = new Set([...this.selected].filter((id) => this.byId.has(id)));
      const at = cursorId === null ? -1 : this.order.indexOf(cursorId);
      if (at >= 0) this.cursor = at + direction;          // a sliding window: step on
      else if (direction < 0) this.cursor = this.order.length - 1;
      else this.cursor = 0;
      if (direction) { this.selected.clear(); this.message = ""; }
      this.anchor = null;
      this.pendingPage = 0;
    } else if (direction && this.applied >= this.pendingPageSeq) {
      // Python has seen the request and sent the same images: there are no others.
      this.message = direction > 0 ? "No more images after these." : "These are the first images.";
      this.pendingPage = 0;
    }
    this.cursor = Math.min(Math.max(0, this.cursor), Math.max(0, this.order.length - 1));
    this.signature = newOrder.join(",");
  }

  /** Labels from Python, then every local action Python's tiles do not show yet. */
  rebuildView() {
    this.view = new Map(this.tiles.map((t) => [t.id, { label: t.label ?? null, confirmed: !!t.confirmed }]));
    for (const action of this.log) this.applyToView(action);
  }

  applyToView(action) {
    action.ids.forEach((id, i) => {
      const seen = this.view.get(id);
      if (!seen) return;
      if (action.kind === "assign") { seen.label = action.label; seen.confirmed = false; }
      else if (action.kind === "confirm") { seen.confirmed = true; }
      else if (action.kind === "undo") {
        seen.label = action.undone.previous[i];
        seen.confirmed = !!(action.undone.previous_confirmed || [])[i];
      }
    });
  }

  get cursorId() { return this.order.length ? this.order[this.cursor] : null; }

  labelOf(id) { return this.view.get(id)?.label ?? null; }

  colourOf(label, fallback) {
    const known = this.classes.find((c) => c.name === label);
    if (known) return known.colour;
    return label == null ? GREY : (fallback || GREY);
  }

  /** Images an action is about: the selection (grid order), else the image under the cursor. */
  targets() {
    if (this.mode === "grid" && this.selected.size) return this.order.filter((id) => this.selected.has(id));
    return this.order.length ? [this.order[this.cursor]] : [];
  }

  log_(action) {
    this.seq += 1;
    const wire = { seq: this.seq, kind: action.kind, ids: action.ids, label: action.label ?? null,
      previous: action.previous ?? [], undoes: action.undoes ?? null, undone: action.undone ?? null,
      direction: action.direction ?? null, cursor: this.cursorId };
    this.log.push(wire);
    return wire;
  }

  /** Index after the last target: auto-advance. At the end, one mode asks for the next page. */
  advancePast(ids) {
    const last = Math.max(...ids.map((id) => this.order.indexOf(id)));
    if (last + 1 < this.order.length) { this.cursor = last + 1; return false; }
    this.cursor = Math.max(0, this.order.length - 1);
    return true;
  }

  assign(classIndex) {
    const cls = this.classes[classIndex];
    this.prefix = "";
    if (!cls) { this.message = `There is no class ${classIndex + 1}.`; return []; }
    const ids = this.targets();
    if (!ids.length) return [];
    // Giving an image the class it shows changes nothing: it says the label is right.
    if (ids.every((id) => this.labelOf(id) === cls.name)) return this.confirm();
    const previous = ids.map((id) => this.labelOf(id));
    const previousConfirmed = ids.map((id) => !!this.view.get(id)?.confirmed);
    ids.forEach((id) => { const v = this.view.get(id); v.label = cls.name; v.confirmed = false; });
    const atEnd = this.advancePast(ids);
    this.selected.clear(); this.anchor = null;
    const action = this.log_({ kind: "assign", ids, label: cls.name, previous });
    this.history.push({ ...action, previous_confirmed: previousConfirmed });
    this.message = ids.length === 1
      ? `#${ids[0]}: ${previous[0] ?? UNLABELED} → ${cls.name}`
      : `${ids.length} images → ${cls.name}`;
    return this.afterAdvance(atEnd, [action]);
  }

  confirm() {
    this.prefix = "";
    const ids = this.targets();
    if (!ids.length) return [];
    const unlabeled = ids.filter((id) => this.labelOf(id) == null);
    if (unlabeled.length) {
      this.message = `#${unlabeled[0]} has no label to confirm: give it a class first.`;
      return [];
    }
    const previous = ids.map((id) => this.labelOf(id));
    const previousConfirmed = ids.map((id) => !!this.view.get(id)?.confirmed);
    ids.forEach((id) => { this.view.get(id).confirmed = true; });
    const atEnd = this.advancePast(ids);
    this.selected.clear(); this.anchor = null;
    const action = this.log_({ kind: "confirm", ids, previous });
    this.history.push({ ...action, previous_confirmed: previousConfirmed });
    this.message = ids.length === 1 ? `#${ids[0]}: ${previous[0]} confirmed` : `${ids.length} labels confirmed`;
    return this.afterAdvance(atEnd, [action]);
  }

  afterAdvance(atEnd, actions) {
    if (atEnd && this.mode === "one") {
      const said = this.message;
      const page = this.page(1);
      this.message = `${said} · loading the next images…`;
      return page ? [...actions, page] : actions;
    }
    if (atEnd) this.message += " · last image of this page (PageDown: next page)";
    return actions;
  }

  /** Undo the reviewer's last assign/confirm that is not undone yet; show it reverted. */
  undo() {
    this.prefix = "";
    const last = this.history.pop();
    if (!last) { this.message = "Nothing to undo."; return []; }
    const before = last.ids.map((id) => this.labelOf(id));
    const undone = { kind: last.kind, label: last.label, previous: last.previous,
      previous_confirmed: last.previous_confirmed };
    const at = this.order.indexOf(last.ids[0]);
    if (at >= 0) this.cursor = at;
    this.selected.clear(); this.anchor = null;
    const action = this.log_({ kind: "undo", ids: last.ids, previous: before, undoes: last.seq, undone });
    this.applyToView(action);
    const what = last.kind === "assign" ? `${last.label} on` : "confirmation of";
    const where = at >= 0 ? "" : " (not on this page)";
    this.message = last.ids.length === 1
      ? `Undid ${what} #${last.ids[0]}${where}: back to ${last.previous[0] ?? UNLABELED}`
      : `Undid ${what} ${last.ids.length} images${where}`;
    return [action];
  }

  page(direction) {
    if (this.pendingPage === direction) return null;
    this.pendingPage = direction;
    this.message = direction > 0 ? "Loading the next images…" : "Loading the previous images…";
    const action = this.log_({ kind: "page", ids: [], direction });
    this.pendingPageSeq = action.seq;
    return action;
  }

  move(move, extend = false, columns = 1) {
    this.prefix = "";
    const cols = this.mode === "grid" ? columns : 1;
    const oneMove = this.mode === "one" ? ({ up: "left", down: "right" }[move] || move) : move;
    const from = this.cursor;
    const to = moveIndex(from, this.order.length, oneMove, cols);
    if (this.mode === "one" && to === from && this.order.length) {
      if (oneMove === "right" && from === this.order.length - 1) return this.pageOrNothing(1);
      if (oneMove === "left" && from === 0) return this.pageOrNothing(-1);
    }
    if (extend && this.mode === "grid") {
      if (this.anchor === null) this.anchor = from;
      this.selected = new Set(rangeIds(this.order, this.anchor, to));
    }
    this.cursor = to;
    this.message = "";
    return [];
  }

  pageOrNothing(direction) {
    const action = this.page(direction);
    return action ? [action] : [];
  }

  toggle() {
    if (this.mode !== "grid" || !this.order.length) return [];
    const id = this.order[this.cursor];
    if (this.selected.has(id)) this.selected.delete(id); else this.selected.add(id);
    this.anchor = this.cursor;
    return [];
  }

  /** A click on tile `index`: shift selects the range from the anchor, ctrl/cmd toggles. */
  click(index, { shift = false, toggle = false } = {}) {
    if (index < 0 || index >= this.order.length) return [];
    this.prefix = "";
    if (this.mode === "grid" && shift) {
      if (this.anchor === null) this.anchor = this.cursor;
      this.selected = new Set(rangeIds(this.order, this.anchor, index));
    } else if (this.mode === "grid" && toggle) {
      const id = this.order[index];
      if (this.selected.has(id)) this.selected.delete(id); else this.selected.add(id);
      this.anchor = index;
    } else {
      this.selected.clear();
      this.anchor = index;
    }
    this.cursor = index;
    return [];
  }

  /** A letter typed: a complete class shortcut assigns, a start of one waits for more. */
  letters(prefix) {
    if (!prefix) { this.prefix = ""; this.message = ""; return []; }
    const exact = this.keymap.find((k) => k.letters === prefix);
    if (exact) return this.assign(exact.index);
    const starts = this.keymap.filter((k) => k.letters && k.letters.startsWith(prefix));
    if (!starts.length) {
      this.prefix = "";
      this.message = `No class key starts with “${prefix}” (press ? for the keys, / to search).`;
      return [];
    }
    this.prefix = prefix;
    this.message = `${prefix}… ${starts.map((k) => `${k.letters} ${k.name}`).join(" · ")}`;
    return [];
  }

  escape() {
    if (this.helpOpen) { this.helpOpen = false; return []; }
    if (this.prefix) { this.prefix = ""; this.message = ""; return []; }
    if (this.selected.size) { this.selected.clear(); this.anchor = null; this.message = ""; return []; }
    return [];
  }

  /** Run one command from keyCommand (or a click); returns the wire actions it logged. */
  run(command, columns = 1) {
    switch (command.type) {
      case "assign": return this.assign(command.classIndex);
      case "confirm": return this.confirm();
      case "undo": return this.undo();
      case "move": return this.move(command.move, command.extend, columns);
      case "page": return this.pageOrNothing(command.direction);
      case "toggle": return this.toggle();
      case "letters": return this.letters(command.prefix);
      case "help": this.helpOpen = !this.helpOpen; return [];
      case "escape": return this.escape();
      case "ignored":
        this.prefix = "";
        this.message = `“${command.key}” does nothing here (press ? for the keys).`;
        return [];
      default: return [];
    }
  }

  /** The log as sent to Python (state "actions"): copies, oldest first. */
  wireLog() { return this.log.map((a) => ({ ...a, ids: [...a.ids], previous: [...a.previous] })); }
}

// ----------------------------------------------------------------------------- DOM

/**
 * Make an element. Strings in `children` become text nodes; `text` sets textContent.
 * Nothing here parses HTML, so a class named "<b>x</b>" shows exactly those characters.
 */
export function el(doc, tag, props = {}, ...children) {
  const node = doc.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "className") node.className = value;
    else if (name === "text") node.textContent = String(value);
    else if (name === "style") for (const [p, v] of Object.entries(value)) node.style.setProperty(p, v);
    else node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === "string" ? doc.createTextNode(child) : child);
  }
  return node;
}

/** A coloured label tag; confirmed labels carry a check mark. */
export function tag(doc, label, colour, confirmed = false, small = false) {
  const text = (confirmed ? "✓ " : "") + (label == null ? UNLABELED : String(label));
  return el(doc, "span", {
    className: "rk-tag" + (small ? " rk-tag-small" : "") + (label == null ? " rk-tag-none" : ""),
    style: { "--rk-tag": colour, "--rk-tag-text": textColourOn(colour) },
    title: text, text,
  });
}

const KEY_HELP = [
  ["1 … 9, 0", "give the first ten classes"],
  ["letters", "give a class by its letters (shown beside each class)"],
  ["/", "search a class by name, Enter gives it"],
  ["Enter", "confirm: the label is right"],
  ["← → (↑ ↓ in the grid)", "move; after a label or a confirm the cursor moves on by itself"],
  ["Shift + arrows, Shift + click", "select several images (grid); a class key labels them all"],
  ["Space, Ctrl/⌘ + click", "add or remove one image from the selection (grid)"],
  ["u or Ctrl/⌘ + Z", "undo your last label or confirm (it reverts on screen)"],
  ["PageDown / PageUp", "next / previous images"],
  ["Esc", "cancel typing, clear the selection, close this list"],
  ["?", "show or hide this list"],
];

class ReviewWidget {
  constructor(parentElement) {
    this.parent = parentElement;
    this.doc = parentElement.ownerDocument || document;
    this.model = new ReviewModel();
    this.component = null;
    this.largeImages = new Map();  // data URI -> decoded <img> for the big image
    this.smallImages = new Map();  // data URI -> <img> for the neighbours of the big image
    this.followCursor = false;     // scroll the grid to the cursor after a key or a click
    this.gridCells = new Map();    // id -> {cell, img, tag}
    this.gridSignature = null;
    this.sendScheduled = false;
    this.search = null;            // {input, list, hits, at} while searching
    this.build();
    this.onWindowKey = (ev) => {
      // Keys typed while no control has focus (the page, Streamlit's main area) come here,
      // so a reviewer need not click first; keys typed in other widgets are left to them.
      if (keyOwner !== this || !this.root.isConnected || ev.defaultPrevented) return;
      if (ev.composedPath().includes(this.root)) return;   // the root's own listener has it
      if (!isFreeFocus(this.doc.activeElement)) return;
      this.handleKey(ev);
    };
    keyOwner = this;
    this.doc.defaultView.addEventListener("keydown", this.onWindowKey, true);
    this.cleanup = () => {
      this.doc.defaultView.removeEventListener("keydown", this.onWindowKey, true);
      instances.delete(this.parent);
      if (keyOwner === this) keyOwner = null;
    };
  }

  build() {
    const d = this.doc;
    const old = this.parent.querySelector(".rk");
    this.root = old || el(d, "div", { className: "rk" });
    this.root.replaceChildren();
    this.root.setAttribute("tabindex", "0");
    this.root.setAttribute("role", "application");
    this.root.setAttribute("aria-label", "Review labels by keyboard");
    this.legend = el(d, "div", { className: "rk-legend" });
    this.position = el(d, "span", { className: "rk-position" });
    this.focusHint = el(d, "span", { className: "rk-focus" });
    this.helpButton = el(d, "button", { className: "rk-help-button", type: "button", text: "? keys" });
    const head = el(d, "div", { className: "rk-head" }, this.position, this.focusHint, this.helpButton);
    this.stage = el(d, "div", { className: "rk-stage" });
    this.status = el(d, "div", { className: "rk-status", "aria-live": "polite" });
    this.help = el(d, "div", { className: "rk-help", hidden: true });
    this.searchBox = el(d, "div", { className: "rk-search", hidden: true });
    this.root.append(head, this.legend, this.stage, this.status, this.help, this.searchBox);
    if (!old) this.parent.append(this.root);

    this.root.addEventListener("keydown", (ev) => {
      if (this.search && ev.target === this.search.input) return;  // the search box handles its keys
      this.handleKey(ev);
    });
    this.root.addEventListener("focusin", () => { keyOwner = this; this.drawFocus(); });
    this.root.addEventListener("focusout", () => this.drawFocus());
    this.helpButton.addEventListener("click", (ev) => { ev.stopPropagation(); this.act({ type: "help" }); });
    this.help.addEventListener("click", () => this.act({ type: "help" }));
    this.root.addEventListener("click", (ev) => {
      if (this.search) return;
      const chip = ev.target.closest?.("[data-class-index]");
      const cell = ev.target.closest?.("[data-index]");
      this.root.focus({ preventScroll: true });  // keys go to the widget, not to a button
      if (chip) {
        this.act({ type: "assign", classIndex: Number(chip.dataset.classIndex) });
      } else if (cell) {
        if (ev.shiftKey) ev.preventDefault();
        this.model.click(Number(cell.dataset.index), { shift: ev.shiftKey, toggle: ev.ctrlKey || ev.metaKey });
        this.followCursor = true;
        this.draw();
      }
    });
    // Shift-click would otherwise select the text between two tiles.
    this.root.addEventListener("mousedown", (ev) => { if (ev.shiftKey) ev.preventDefault(); });
  }

  update(component) {
    this.component = component;
    const firstData = this.model.signature === "" && !this.model.tiles.length;
    this.model.load(component.data);
    this.draw();
    if (firstData) {
      const active = this.doc.activeElement;
      if (!active || active === this.doc.body) this.root.focus({ preventScroll: true });
    }
  }

  columns() {
    if (this.model.mode !== "grid" || !this.grid) return 1;
    const template = this.doc.defaultView.getComputedStyle(this.grid).gridTemplateColumns || "";
    return Math.max(1, template.split(" ").filter(Boolean).length);
  }

  handleKey(ev) {
    if (this.search) return;
    const command = keyCommand(ev, { prefix: this.model.prefix, helpOpen: this.model.helpOpen,
                                     keymap: this.model.keymap });
    if (!command) return;
    ev.preventDefault();
    ev.stopPropagation();  // Streamlit's own keys (r: rerun, c: clear cache) stay quiet here
    if (command.type === "search") { this.openSearch(); return; }
    this.act(command);
  }

  act(command) {
    const actions = this.model.run(command, this.columns());
    this.followCursor = true;
    this.draw();
    if (actions.length) this.scheduleSend();
  }

  /** Send the log after the frame with the next image is painted, once per frame. */
  scheduleSend() {
    if (this.sendScheduled) return;
    this.sendScheduled = true;
    const win = this.doc.defaultView;
    win.requestAnimationFrame(() => win.setTimeout(() => {
      this.sendScheduled = false;
      try {
        this.component?.setStateValue("actions", this.model.wireLog());
      } catch (error) {
        // The log stays whole: the next action (or rerun) sends it all again.
        this.model.message = `Could not send your changes yet (${error}); they are kept and sent with the next one.`;
        this.draw();
      }
    }, 0));
  }

  // --------------------------------------------------------------------- drawing

  draw() {
    const m = this.model;
    this.root.dataset.mode = m.mode;
    this.drawLegend();
    if (m.mode === "grid") this.drawGrid(); else this.drawOne();
    const n = m.order.length;
    const selected = m.selected.size ? ` · ${m.selected.size} selected` : "";
    this.position.textContent = n ? `Image ${m.cursor + 1} of ${n}${selected}` : "No images to review";
    this.status.textContent = m.message || (m.selected.size
      ? `${m.selected.size} selected: a class key labels them all, Enter confirms them all.`
      : "Number or letters: give a class · Enter: confirm · u: undo · ?: all keys");
    this.help.hidden = !m.helpOpen;
    if (m.helpOpen && !this.help.firstChild) this.drawHelp();
    this.drawFocus();
    this.followCursor = false;
  }

  drawFocus() {
    // In a shadow root the focused element is the root's activeElement, else the document's.
    const active = this.parent.activeElement !== undefined ? this.parent.activeElement : this.doc.activeElement;
    const inside = !!active && (active === this.root || this.root.contains(active));
    const free = !this.doc.activeElement || this.doc.activeElement === this.doc.body;
    this.root.classList.toggle("rk-focused", inside);
    this.focusHint.textContent = inside || free ? "keys on" : "keys off: click here";
  }

  drawLegend() {
    const m = this.model;
    const signature = JSON.stringify([m.keymap, m.classes]) + m.prefix;
    if (this.legendSignature === signature) return;
    this.legendSignature = signature;
    const d = this.doc;
    this.legend.replaceChildren(...m.keymap.map((k) => {
      const cls = m.classes[k.index];
      const keys = [k.number, k.letters].filter(Boolean).join(" ") || "/";
      const waiting = m.prefix && k.letters && k.letters.startsWith(m.prefix);
      return el(d, "button", {
        type: "button", className: "rk-chip" + (waiting ? " rk-chip-wait" : ""),
        "data-class-index": k.index, title: `${cls.name}: ${keys}`,
        style: { "--rk-tag": cls.colour, "--rk-tag-text": textColourOn(cls.colour) },
      }, el(d, "kbd", { text: keys }), el(d, "span", { className: "rk-chip-name", text: cls.name }));
    }));
  }

  imageSrc(index) { return this.model.images[index] ?? ""; }

  /**
   * One <img> per picture, decoded ahead of time and reused, so that the next image shows
   * in the same frame as the key press. Keyed by the data URI (indices change per rerun).
   */
  cachedImage(cache, index, className, limit) {
    const src = this.imageSrc(index);
    let img = cache.get(src);
    if (img) { cache.delete(src); cache.set(src, img); return img; }
    img = el(this.doc, "img", { className, alt: "", decoding: "sync" });
    img.addEventListener("load", () => img.classList.toggle("rk-pixelated", img.naturalWidth > 0 && img.naturalWidth < 64));
    img.src = src;
    img.decode?.().catch(() => {});
    cache.set(src, img);
    if (cache.size > limit) cache.delete(cache.keys().next().value);
    return img;
  }

  largeImage(index) { return this.cachedImage(this.largeImages, index, "rk-main-img", 48); }

  drawOne() {
    const m = this.model;
    const d = this.doc;
    if (!this.one) {
      this.grid = null;
      this.gridSignature = null;
      this.gridCells.clear();
      this.mainBox = el(d, "div", { className: "rk-main-box" });
      this.mainTag = el(d, "div", { className: "rk-main-tag" });
      this.mainName = el(d, "div", { className: "rk-name" });
      this.mainReason = el(d, "div", { className: "rk-reason" });
      this.neighbours = el(d, "div", { className: "rk-neighbours" });
      const side = el(d, "div", { className: "rk-side" }, this.mainTag, this.mainName, this.mainReason,
        el(d, "div", { className: "rk-side-title", text: "5 nearest neighbours" }), this.neighbours);
      this.one = el(d, "div", { className: "rk-one" }, this.mainBox, side);
      this.stage.replaceChildren(this.one);
    }
    const id = m.cursorId;
    const tile = id === null ? null : m.byId.get(id);
    if (!tile) {
      this.mainBox.replaceChildren(el(d, "div", { className: "rk-empty", text: "No images to review." }));
      this.mainTag.replaceChildren(); this.mainName.textContent = ""; this.mainReason.textContent = "";
      this.neighbours.replaceChildren();
      return;
    }
    const img = this.largeImage(tile.image);
    if (this.mainBox.firstChild !== img) this.mainBox.replaceChildren(img);
    this.mainBox.dataset.id = String(id);
    for (let ahead = -1; ahead <= 3; ahead++) {  // decode the next images before they are needed
      const next = ahead ? m.byId.get(m.order[m.cursor + ahead]) : null;
      if (!next) continue;
      this.largeImage(next.image);
      (next.neighbours || []).slice(0, 5).forEach((n) => this.neighbourImage(n.image));
    }
    const seen = m.view.get(id);
    this.mainTag.replaceChildren(tag(d, seen.label, m.colourOf(seen.label, tile.colour), seen.confirmed));
    this.mainName.textContent = tile.name ? `#${id} · ${tile.name}` : `#${id}`;
    this.mainReason.textContent = tile.reason || "";
    this.mainReason.title = tile.reason || "";
    const cells = [];
    const used = new Set();
    for (let i = 0; i < 5; i++) {
      const n = (tile.neighbours || [])[i];
      if (!n) { cells.push(el(d, "div", { className: "rk-neighbour rk-neighbour-none" })); continue; }
      const box = el(d, "div", { className: "rk-neighbour-box" }, this.neighbourImage(n.image, used));
      cells.push(el(d, "div", { className: "rk-neighbour" }, box, tag(d, n.label, m.colourOf(n.label), false, true)));
    }
    this.neighbours.replaceChildren(...cells);
  }

  neighbourImage(index, used = null) {
    const img = this.cachedImage(this.smallImages, index, "rk-thumb", 160);
    if (!used) return img;
    // The same picture twice among one image's neighbours: the second gets its own copy.
    if (used.has(img)) return img.cloneNode();
    used.add(img);
    return img;
  }

  thumb(index) {
    const img = el(this.doc, "img", { className: "rk-thumb", alt: "", src: this.imageSrc(index), loading: "eager" });
    img.addEventListener("load", () => img.classList.toggle("rk-pixelated", img.naturalWidth > 0 && img.naturalWidth < 64));
    return img;
  }

  drawGrid() {
    const m = this.model;
    const d = this.doc;
    if (this.one) { this.one = null; this.largeImages.clear(); }
    const signature = m.signature + "|" + m.images.length;
    if (!this.grid || this.gridSignature !== signature) {
      this.gridSignature = signature;
      this.gridCells.clear();
      this.grid = el(d, "div", { className: "rk-grid", role: "grid" });
      m.order.forEach((id, index) => {
        const tile = m.byId.get(id);
        const img = this.thumb(tile.image);
        const tagBox = el(d, "div", { className: "rk-cell-tag" });
        const cell = el(d, "div", { className: "rk-cell", "data-index": index, "data-id": id, role: "gridcell" },
          el(d, "div", { className: "rk-cell-box" }, img), tagBox,
          el(d, "div", { className: "rk-cell-name", text: tile.name ? tile.name : `#${id}` }));
        this.grid.append(cell);
        this.gridCells.set(id, { cell, tagBox, label: undefined, confirmed: undefined });
      });
      this.detailTag = el(d, "span", { className: "rk-detail-tag" });
      this.detailText = el(d, "span", { className: "rk-detail-text" });
      this.detailNeighbours = el(d, "span", { className: "rk-detail-neighbours" });
      this.detail = el(d, "div", { className: "rk-detail" }, this.detailTag, this.detailText, this.detailNeighbours);
      this.stage.replaceChildren(this.grid, this.detail);
      if (!m.order.length) this.grid.append(el(d, "div", { className: "rk-empty", text: "No images to review." }));
    }
    // Tags change in place; sizes never change, so nothing moves under the cursor.
    m.order.forEach((id, index) => {
      const c = this.gridCells.get(id);
      const seen = m.view.get(id);
      if (c.label !== seen.label || c.confirmed !== seen.confirmed) {
        c.label = seen.label; c.confirmed = seen.confirmed;
        c.tagBox.replaceChildren(tag(d, seen.label, m.colourOf(seen.label, m.byId.get(id).colour), seen.confirmed));
      }
      c.cell.classList.toggle("rk-cursor", index === m.cursor);
      c.cell.classList.toggle("rk-selected", m.selected.has(id));
      c.cell.setAttribute("aria-selected", m.selected.has(id) ? "true" : "false");
    });
    const id = m.cursorId;
    const tile = id === null ? null : m.byId.get(id);
    if (tile) {
      const seen = m.view.get(id);
      this.detailTag.replaceChildren(tag(d, seen.label, m.colourOf(seen.label, tile.colour), seen.confirmed));
      this.detailText.textContent = `#${id}${tile.name ? " · " + tile.name : ""}${tile.reason ? " — " + tile.reason : ""}`;
      this.detailText.title = this.detailText.textContent;
      this.detailNeighbours.replaceChildren(...(tile.neighbours || []).slice(0, 5).map((n) =>
        el(d, "span", { className: "rk-detail-neighbour", title: n.label == null ? UNLABELED : String(n.label),
          style: { "--rk-tag": m.colourOf(n.label) } }, this.thumb(n.image))));
      const cell = this.gridCells.get(id)?.cell;
      if (cell && this.followCursor) cell.scrollIntoView?.({ block: "nearest", inline: "nearest" });
    }
  }

  drawHelp() {
    const d = this.doc;
    const m = this.model;
    const rows = KEY_HELP.map(([keys, what]) => el(d, "tr", {}, el(d, "th", { text: keys }), el(d, "td", { text: what })));
    const classes = m.keymap.map((k) => el(d, "div", { className: "rk-help-class" },
      el(d, "kbd", { text: [k.number, k.letters].filter(Boolean).join(" ") || "/" }),
      tag(d, m.classes[k.index].name, m.classes[k.index].colour, false, true)));
    this.help.replaceChildren(el(d, "div", { className: "rk-help-card" },
      el(d, "section", {}, el(d, "h4", { text: "Keys" }), el(d, "table", {}, ...rows)),
      el(d, "section", {}, el(d, "h4", { text: "Classes" }),
        el(d, "p", { className: "rk-help-note", text: "Letters: the shortest start of a class name that starts no other name (a–z only). u is undo, so a name starting with u, or one that starts another name, has no letters: use its number or /." }),
        el(d, "div", { className: "rk-help-classes" }, ...classes),
        el(d, "p", { className: "rk-help-note", text: "Press ? or Esc to close." }))));
  }

  // --------------------------------------------------------------------- search

  openSearch() {
    const d = this.doc;
    const m = this.model;
    const input = el(d, "input", { className: "rk-search-input", type: "text", placeholder: "Type part of a class name", "aria-label": "Search a class" });
    const list = el(d, "div", { className: "rk-search-list" });
    this.search = { input, list, hits: [], at: 0 };
    const refresh = () => {
      const s = this.search;
      s.hits = searchClasses(m.classes.map((c) => c.name), input.value).slice(0, 8);
      s.at = Math.min(s.at, Math.max(0, s.hits.length - 1));
      list.replaceChildren(...s.hits.map((index, i) =>
        el(d, "div", { className: "rk-search-hit" + (i === s.at ? " rk-search-at" : "") },
          tag(d, m.classes[index].name, m.classes[index].colour))));
    };
    input.addEventListener("input", () => { this.search.at = 0; refresh(); });
    input.addEventListener("keydown", (ev) => {
      ev.stopPropagation();
      const s = this.search;
      if (ev.key === "Escape") { ev.preventDefault(); this.closeSearch(); }
      else if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        ev.preventDefault();
        s.at = Math.max(0, Math.min(s.hits.length - 1, s.at + (ev.key === "ArrowDown" ? 1 : -1)));
        refresh();
      } else if (ev.key === "Enter") {
        ev.preventDefault();
        const index = s.hits[s.at];
        this.closeSearch();
        if (index !== undefined) this.act({ type: "assign", classIndex: index });
      }
    });
    this.searchBox.replaceChildren(el(d, "div", { className: "rk-search-card" },
      el(d, "div", { className: "rk-help-note", text: "Give a class by name: type, ↑ ↓ to choose, Enter to give, Esc to cancel." }),
      input, list));
    this.searchBox.hidden = false;
    refresh();
    input.focus();
  }

  closeSearch() {
    this.search = null;
    this.searchBox.hidden = true;
    this.searchBox.replaceChildren();
    this.root.focus({ preventScroll: true });
  }
}

const instances = new WeakMap();  // parentElement -> ReviewWidget
let keyOwner = null;              // the widget that takes keys typed outside any widget

const CONTROLS = "input, textarea, select, button, a[href], [contenteditable=''], "
  + "[contenteditable='true'], [role=textbox], [role=combobox], [role=slider], "
  + "[role=spinbutton], [role=listbox], [role=option], [role=menuitem], [role=tab], "
  + "[role=checkbox], [role=radio], [role=switch], [role=button], [role=dialog]";

/** True when the focused element is no control: the page, or a plain container. */
export function isFreeFocus(active) {
  if (!active || active.tagName === "BODY" || active.tagName === "HTML") return true;
  if (active.shadowRoot) return false;       // another component (or this one's host)
  return !active.matches?.(CONTROLS) && !active.closest?.("[role=dialog], [role=listbox], [role=menu]");
}

/**
 * The component: Streamlit calls this on mount and again whenever Python sends new data
 * (same parentElement), so the widget keeps its state between calls and only redraws.
 */
export default function reviewKeys(component) {
  let widget = instances.get(component.parentElement);
  if (!widget) {
    widget = new ReviewWidget(component.parentElement);
    instances.set(component.parentElement, widget);
  }
  widget.update(component);
  return widget.cleanup;
}
