// node --test: the pure parts of the hover thumbnails (tests/test_hover.py runs this file).
import assert from "node:assert/strict";
import { test } from "node:test";

import { placeTooltip, pointId } from "./hover.mjs";

test("a point's id is the first entry of its customdata, in every form plotly gives", () => {
  assert.equal(pointId({ customdata: 42 }), 42);
  assert.equal(pointId({ customdata: [7, "x"] }), 7);
  assert.equal(pointId({ customdata: { 0: 86, 1: 3 } }), 86);
  assert.equal(pointId({ customdata: 12.0 }), 12);
  assert.equal(pointId({}), null);
  assert.equal(pointId({ customdata: "no id" }), null);
});

test("the tooltip stays inside the window", () => {
  assert.deepEqual(placeTooltip(10, 10, 100, 100, 800, 600), { left: 26, top: 26 });
  assert.deepEqual(placeTooltip(750, 10, 100, 100, 800, 600), { left: 634, top: 26 });
  assert.deepEqual(placeTooltip(10, 580, 100, 100, 800, 600), { left: 26, top: 464 });
});

test("a thumbnail is asked for once, and not at all once it is here", async () => {
  const { ThumbCache } = await import("./hover.mjs");
  const cache = new ThumbCache(3);
  assert.equal(cache.request(5), 5);
  assert.equal(cache.request(5), null);          // asked already: wait for it
  cache.add({ 5: "data:image/jpeg;base64,AA" }, { 5: "a.jpg" });
  assert.equal(cache.request(5), null);          // here
  assert.equal(cache.captions.get(5), "a.jpg");
  assert.equal(cache.request(null), null);
  cache.add({ 1: "x", 2: "y", 3: "z" }, {});     // past the limit: the oldest goes
  assert.equal(cache.thumbs.has(5), false);
  assert.equal(cache.request(5), 5);
});

test("a thumbnail is asked for once the pointer rests, and not when the point is clicked", async () => {
  const { AskLater } = await import("./hover.mjs");
  const due = [];
  const timers = {
    setTimeout: (f, ms) => { due.push({ f, ms, live: true }); return due.length - 1; },
    clearTimeout: (t) => { due[t].live = false; },
  };
  const sent = [];
  const later = new AskLater((id) => sent.push(id), 150, timers);
  later.want(3);
  later.want(4);                       // the pointer moved on: only the last point is asked
  assert.deepEqual(due.map((d) => [d.ms, d.live]), [[150, false], [150, true]]);
  due[1].f();
  assert.deepEqual(sent, [4]);
  later.want(5);
  later.cancel();                      // pressed or clicked before the wait was over
  assert.equal(due[2].live, false);
  assert.equal(later.timer, null);
  later.cancel();                      // nothing waiting: nothing to do
  assert.deepEqual(sent, [4]);
});
