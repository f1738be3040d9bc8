// Unit tests of the widget's pure logic: `node --test app_pages/_review_keys/` (no packages).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  ReviewModel, buildKeymap, el, isFreeFocus, keyCommand, letterForm, moveIndex, rangeIds,
  searchClasses, tag, textColourOn,
} from "./widget.mjs";

const DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];

function data(ids, { labels = {}, mode = "one", applied = 0, floor = 0, classes = DIGITS } = {}) {
  return {
    mode, applied, floor,
    classes: classes.map((name, i) => ({ name, colour: `#${String(i).repeat(6)}` })),
    images: ids.map((id) => `data:image/png;base64,${id}`),
    tiles: ids.map((id, i) => ({ id, image: i, label: id in labels ? labels[id] : "one", reason: "", neighbours: [] })),
  };
}

function model(ids, options) {
  const m = new ReviewModel();
  m.load(data(ids, options));
  return m;
}

const press = (key, extra = {}) => ({ key, shiftKey: false, ctrlKey: false, metaKey: false, altKey: false, ...extra });

// ----------------------------------------------------------------------------- key map

test("digit class names get their shortest unambiguous letters and the number keys", () => {
  const keys = buildKeymap([...DIGITS, "<b>x</b>"]);
  assert.deepEqual(keys.map((k) => k.letters),
    ["z", "o", "tw", "th", "fo", "fi", "si", "se", "e", "n", "b"]);
  assert.deepEqual(keys.map((k) => k.number), ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", null]);
});

test("a class named by a digit gets that digit's key, the others the free ones in order", () => {
  const digits = buildKeymap(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  assert.deepEqual(digits.map((k) => k.number), ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  const mixed = buildKeymap(["cat", "3", "dog", "3"]);
  assert.deepEqual(mixed.map((k) => k.number), ["1", "3", "2", "4"]);
});

test("a name that starts another, starts with u, or has no letters gets no letters", () => {
  const keys = buildKeymap(["cat", "caterpillar", "umbrella", "42", "Éclair", "dog"]);
  assert.deepEqual(keys.map((k) => k.letters), [null, "cate", null, null, "e", "d"]);
  assert.equal(letterForm("Éclair 2"), "eclair");
});

test("no letter shortcut is the start of another, so each acts on its last letter", () => {
  const words = ["cat", "car", "cart", "dog", "door", "do", "ant", "anteater", "bee", "beetle",
    "Bear", "be", "x", "xylophone", "apple", "ape", "umbra", "under", "zebra", "zeb"];
  for (let n = 2; n <= words.length; n++) {
    const keys = buildKeymap(words.slice(0, n)).map((k) => k.letters).filter(Boolean);
    for (const a of keys) for (const b of keys) if (a !== b) assert.ok(!b.startsWith(a), `${a} starts ${b}`);
    assert.equal(new Set(keys).size, keys.length);
  }
});

test("searching classes puts names that start with the query first", () => {
  assert.deepEqual(searchClasses(["tabby cat", "cat", "dog", "caterpillar"], "cat"), [1, 3, 0]);
  assert.deepEqual(searchClasses(["a", "b"], ""), [0, 1]);
});

test("keys map to commands; u undoes only when no letters are pending", () => {
  assert.deepEqual(keyCommand(press("3")), { type: "assign", classIndex: 2 });
  const named = buildKeymap(["0", "1", "2", "3"]);             // classes named by digits
  assert.deepEqual(keyCommand(press("3"), { keymap: named }), { type: "assign", classIndex: 3 });
  assert.deepEqual(keyCommand(press("0"), { keymap: named }), { type: "assign", classIndex: 0 });
  assert.deepEqual(keyCommand(press("7"), { keymap: named }), { type: "ignored", key: "7" });
  assert.deepEqual(keyCommand(press("0")), { type: "assign", classIndex: 9 });
  assert.deepEqual(keyCommand(press("Enter")), { type: "confirm" });
  assert.deepEqual(keyCommand(press("u")), { type: "undo" });
  assert.deepEqual(keyCommand(press("u"), { prefix: "f" }), { type: "letters", prefix: "fu" });
  assert.deepEqual(keyCommand(press("z", { ctrlKey: true })), { type: "undo" });
  assert.deepEqual(keyCommand(press("T", { shiftKey: true })), { type: "letters", prefix: "t" });
  assert.deepEqual(keyCommand(press("ArrowDown", { shiftKey: true })), { type: "move", move: "down", extend: true });
  assert.deepEqual(keyCommand(press("?", { shiftKey: true })), { type: "help" });
  assert.deepEqual(keyCommand(press("PageDown")), { type: "page", direction: 1 });
  assert.equal(keyCommand(press("c", { ctrlKey: true })), null);  // copy stays the browser's
  assert.equal(keyCommand(press("Tab")), null);
  assert.deepEqual(keyCommand(press("3"), { helpOpen: true }), { type: "noop" });
  assert.deepEqual(keyCommand(press("Escape"), { helpOpen: true }), { type: "escape" });
});

test("a held-down key moves but never labels, and IME composition is left alone", () => {
  assert.deepEqual(keyCommand(press("3", { repeat: true })), { type: "noop" });
  assert.deepEqual(keyCommand(press("Enter", { repeat: true })), { type: "noop" });
  assert.deepEqual(keyCommand(press("ArrowRight", { repeat: true })), { type: "move", move: "right", extend: false });
  assert.equal(keyCommand(press("a", { isComposing: true })), null);
});

test("the cursor moves by rows in a grid and stops at the ends", () => {
  assert.equal(moveIndex(5, 20, "down", 8), 13);
  assert.equal(moveIndex(5, 20, "up", 8), 0);
  assert.equal(moveIndex(15, 20, "down", 8), 19);
  assert.equal(moveIndex(0, 20, "left"), 0);
  assert.equal(moveIndex(3, 20, "end"), 19);
  assert.deepEqual(rangeIds([10, 11, 12, 13], 3, 1), [11, 12, 13]);
});

test("tag text is black on light colours and white on dark ones", () => {
  assert.equal(textColourOn("#FECB52"), "#000000");
  assert.equal(textColourOn("#1f1f7a"), "#ffffff");
  assert.equal(textColourOn("rgb(255, 255, 255)"), "#000000");
});

test("keys typed with the page or a plain container focused come to the widget, not from controls", () => {
  const element = (tagName, { control = false, inDialog = false, shadowRoot = null } = {}) =>
    ({ tagName, shadowRoot, matches: () => control, closest: () => (inDialog ? {} : null) });
  assert.equal(isFreeFocus(null), true);
  assert.equal(isFreeFocus(element("BODY")), true);
  assert.equal(isFreeFocus(element("MAIN")), true);                  // Streamlit's main area
  assert.equal(isFreeFocus(element("INPUT", { control: true })), false);
  assert.equal(isFreeFocus(element("DIV", { inDialog: true })), false);
  assert.equal(isFreeFocus(element("DIV", { shadowRoot: {} })), false); // another component
});

// ----------------------------------------------------------------------------- actions

test("assign relabels locally, logs action 1 and moves on", () => {
  const m = model([10, 11, 12]);
  const [action] = m.run(keyCommand(press("3")));
  assert.equal(m.view.get(10).label, "two");
  assert.equal(m.cursorId, 11);
  assert.deepEqual(action, { seq: 1, kind: "assign", ids: [10], label: "two", previous: ["one"],
    undoes: null, undone: null, direction: null, cursor: 11 });
  assert.deepEqual(m.wireLog().map((a) => a.seq), [1]);
});

test("letters wait while they start a shortcut and assign on the last one", () => {
  const m = model([10, 11]);
  assert.deepEqual(m.run(keyCommand(press("t"))), []);
  assert.equal(m.prefix, "t");
  const [action] = m.run(keyCommand(press("h"), { prefix: m.prefix }));
  assert.equal(action.label, "three");
  assert.equal(m.prefix, "");
  assert.deepEqual(m.run(keyCommand(press("q"))), []);
  assert.match(m.message, /No class key starts with “q”/);
});

test("Enter confirms, and giving the class already shown is a confirm", () => {
  const m = model([10, 11, 12]);
  assert.equal(m.run(keyCommand(press("Enter")))[0].kind, "confirm");
  assert.equal(m.view.get(10).confirmed, true);
  const [again] = m.run(keyCommand(press("2")));   // 11 shows "one" already
  assert.equal(again.kind, "confirm");
  assert.deepEqual(again.previous, ["one"]);
  assert.equal(m.cursorId, 12);
});

test("a tile with no label cannot be confirmed", () => {
  const m = model([10], { labels: { 10: null } });
  assert.deepEqual(m.run({ type: "confirm" }), []);
  assert.match(m.message, /no label to confirm/);
});

test("undo reverts what the reviewer sees and logs which action it undid", () => {
  const m = model([10, 11, 12]);
  m.run({ type: "confirm" });                       // seq 1 on 10
  m.run({ type: "assign", classIndex: 5 });         // seq 2 on 11
  const [undo] = m.run({ type: "undo" });
  assert.equal(m.view.get(11).label, "one");
  assert.equal(m.cursorId, 11);                     // back on the image it reverted
  assert.equal(undo.seq, 3);
  assert.equal(undo.undoes, 2);
  assert.deepEqual(undo.ids, [11]);
  assert.deepEqual(undo.previous, ["five"]);
  assert.equal(undo.undone.kind, "assign");
  assert.deepEqual(undo.undone.previous, ["one"]);
  const [second] = m.run({ type: "undo" });         // then the confirm of 10
  assert.equal(second.undoes, 1);
  assert.equal(m.view.get(10).confirmed, false);
  assert.deepEqual(m.run({ type: "undo" }), []);
  assert.equal(m.message, "Nothing to undo.");
  assert.deepEqual(m.wireLog().map((a) => a.seq), [1, 2, 3, 4]);
});

test("undo of a label given over a confirmed one shows it confirmed again", () => {
  const m = model([10, 11]);
  m.run({ type: "confirm" });
  m.run({ type: "move", move: "left" });
  m.run({ type: "assign", classIndex: 3 });
  m.run({ type: "undo" });
  assert.deepEqual(m.view.get(10), { label: "one", confirmed: true });
});

test("the log numbers on from the floor Python sends and drops what Python applied", () => {
  const m = model([10, 11, 12, 13], { floor: 41 });
  m.run({ type: "assign", classIndex: 2 });
  m.run({ type: "assign", classIndex: 3 });
  assert.deepEqual(m.wireLog().map((a) => a.seq), [42, 43]);
  // A rerun that only knows about action 42: labels from Python show it, not 43 yet.
  m.load(data([10, 11, 12, 13], { labels: { 10: "two" }, applied: 42, floor: 42 }));
  assert.deepEqual(m.wireLog().map((a) => a.seq), [43]);
  assert.equal(m.view.get(11).label, "three");       // not flipped back by the stale tiles
  m.run({ type: "assign", classIndex: 4 });
  assert.deepEqual(m.wireLog().map((a) => a.seq), [43, 44]);
});

test("an undo Python has not applied yet still shows after a rerun", () => {
  const m = model([10, 11]);
  m.run({ type: "assign", classIndex: 4 });          // seq 1
  m.run({ type: "undo" });                           // seq 2
  m.load(data([10, 11], { labels: { 10: "four" }, applied: 1, floor: 1 }));
  assert.equal(m.view.get(10).label, "one");
});

test("new tiles keep the cursor on the same image id", () => {
  const m = model([10, 11, 12, 13]);
  m.run({ type: "move", move: "right" });
  m.run({ type: "move", move: "right" });            // on 12
  m.load(data([11, 12, 13, 14, 15]));
  assert.equal(m.cursorId, 12);
  m.load(data([20, 21]));                            // gone: start of the new tiles
  assert.equal(m.cursorId, 20);
});

test("at the end of one-image mode an action asks for the next page", () => {
  const m = model([10, 11]);
  m.run({ type: "assign", classIndex: 1 });
  const actions = m.run({ type: "assign", classIndex: 2 });
  assert.deepEqual(actions.map((a) => [a.seq, a.kind, a.direction]), [[2, "assign", null], [3, "page", 1]]);
  assert.deepEqual(m.run({ type: "move", move: "right" }), []);   // asked already
  m.load(data([20, 21, 22], { applied: 3, floor: 3 }));
  assert.equal(m.cursorId, 20);
  m.run({ type: "move", move: "left" });
  m.load(data([20, 21, 22], { applied: 4, floor: 4 }));              // same tiles: no page before
  assert.equal(m.message, "These are the first images.");
  assert.equal(m.cursorId, 20);
});

test("a page that slides with the cursor steps on to the next image", () => {
  const m = model([10, 11]);
  m.run({ type: "move", move: "right" });
  m.run({ type: "move", move: "right" });            // past the end: page +1
  m.load(data([11, 12, 13], { applied: 1, floor: 1 }));
  assert.equal(m.cursorId, 12);
});

// ----------------------------------------------------------------------------- grid

test("shift+arrows select a range in the grid; a class key labels all of it", () => {
  const m = model([1, 2, 3, 4, 5, 6, 7, 8], { mode: "grid" });
  m.run({ type: "move", move: "right" });
  m.run({ type: "move", move: "right", extend: true }, 4);
  m.run({ type: "move", move: "down", extend: true }, 4);       // from 2 to 7
  assert.deepEqual([...m.selected].sort(), [2, 3, 4, 5, 6, 7]);
  const [action] = m.run({ type: "assign", classIndex: 7 });
  assert.deepEqual(action.ids, [2, 3, 4, 5, 6, 7]);
  assert.equal(action.label, "seven");
  assert.equal(m.selected.size, 0);
  assert.equal(m.cursorId, 8);                                   // after the last one labeled
  assert.deepEqual([...m.view.values()].map((v) => v.label), ["one", ...Array(6).fill("seven"), "one"]);
  const [undo] = m.run({ type: "undo" });
  assert.deepEqual(undo.ids, [2, 3, 4, 5, 6, 7]);
  assert.ok([...m.view.values()].every((v) => v.label === "one"));
});

test("shift-click selects from the anchor, ctrl-click and space toggle one image", () => {
  const m = model([1, 2, 3, 4, 5, 6], { mode: "grid" });
  m.click(1);
  m.click(4, { shift: true });
  assert.deepEqual([...m.selected], [2, 3, 4, 5]);
  m.click(2, { toggle: true });
  assert.deepEqual([...m.selected].sort(), [2, 4, 5]);
  m.run({ type: "move", move: "right" });                        // plain moves keep the selection
  m.run({ type: "toggle" });
  assert.deepEqual([...m.selected].sort(), [2, 5]);
  m.run({ type: "escape" });
  assert.equal(m.selected.size, 0);
  m.click(0);
  assert.equal(m.cursorId, 1);
});

test("in one-image mode shift+arrows only move", () => {
  const m = model([1, 2, 3]);
  m.run({ type: "move", move: "down", extend: true });
  assert.equal(m.selected.size, 0);
  assert.equal(m.cursorId, 2);
});

// ----------------------------------------------------------------------------- drawing

class FakeNode {
  constructor(tag, text = null) {
    this.tagName = tag; this.children = []; this._text = text; this.attributes = {};
    this.style = { props: {}, setProperty: (k, v) => { this.style.props[k] = v; } };
  }
  set innerHTML(_) { throw new Error("the widget must never parse HTML"); }
  set textContent(value) { this.children = []; this._text = String(value); }
  get textContent() { return this._text ?? this.children.map((c) => c.textContent).join(""); }
  setAttribute(k, v) { this.attributes[k] = v; }
  append(...nodes) { this.children.push(...nodes); }
  elements() { return this.children.filter((c) => c.tagName !== "#text").flatMap((c) => [c, ...c.elements()]); }
}
const fakeDocument = {
  createElement: (tag) => new FakeNode(tag),
  createTextNode: (text) => new FakeNode("#text", text),
};

test("class names and reasons are shown as text, never parsed as HTML", () => {
  const name = "<b>x</b> & <img src=x onerror=alert(1)>";
  const node = tag(fakeDocument, name, "#000000", true);
  assert.equal(node.textContent, `✓ ${name}`);
  assert.deepEqual(node.elements(), []);
  const box = el(fakeDocument, "div", { title: name }, "reason: <i>3 of 5</i>", node);
  assert.equal(box.textContent, `reason: <i>3 of 5</i>✓ ${name}`);
  assert.deepEqual(box.elements().map((e) => e.tagName), ["span"]);
  assert.equal(box.attributes.title, name);
});
