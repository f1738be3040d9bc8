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
