// node --test: the pure parts of the in-place plotly chart (tests/test_plot.py runs this file).
import assert from "node:assert/strict";
import { test } from "node:test";

import { pointId, themedLayout, TraceCache, withAlpha } from "./plot.mjs";

test("a clicked point's id is the first entry of its customdata, in every form plotly gives", () => {
  assert.equal(pointId({ customdata: { 0: 86, 1: 92, 2: 1 } }), 86);   // binary rows
  assert.equal(pointId({ customdata: [7.0, 1, 0.5] }), 7);
  assert.equal(pointId({ customdata: 3 }), 3);
  assert.equal(pointId({ x: 1.0 }), null);
  assert.equal(pointId(undefined), null);
  assert.equal(pointId({ customdata: "no id" }), null);
});

test("the layout takes the theme's text colour and font, over transparent backgrounds", () => {
  const out = themedLayout({ height: 560, width: 900, legend: { y: -0.02 } },
                           { color: "#fafafa", family: "Source Sans" });
  assert.equal(out.paper_bgcolor, "rgba(0,0,0,0)");
  assert.equal(out.plot_bgcolor, "rgba(0,0,0,0)");
  assert.deepEqual(out.font, { color: "#fafafa", family: "Source Sans" });
  assert.equal(out.width, undefined);               // the width follows the page
  assert.equal(out.autosize, true);
  assert.equal(out.height, 560);
  assert.deepEqual(out.legend, { y: -0.02 });
});

test("grid lines are a faint shade of the theme's text colour, on every axis drawn", () => {
  const out = themedLayout({ xaxis: { title: "round" }, yaxis: {}, yaxis2: { gridcolor: "red" },
                             legend: {} }, { color: "#fafafa" });
  assert.equal(out.xaxis.gridcolor, "rgba(250,250,250,0.15)");
  assert.equal(out.xaxis.title, "round");
  assert.equal(out.yaxis.gridcolor, "rgba(250,250,250,0.15)");
  assert.equal(out.yaxis2.gridcolor, "red");                  // the figure's own wins
  assert.equal(out.legend.gridcolor, undefined);
  assert.equal(themedLayout({ xaxis: {} }, {}).xaxis.gridcolor, undefined);   // no theme known
});

test("a colour takes an alpha whatever CSS form the theme gives it", () => {
  assert.equal(withAlpha("#31333F", 0.15), "rgba(49,51,63,0.15)");
  assert.equal(withAlpha("#fff", 0.5), "rgba(255,255,255,0.5)");
  assert.equal(withAlpha("rgb(250, 250, 250)", 0.15), "rgba(250,250,250,0.15)");
  assert.equal(withAlpha("rgba(1, 2, 3, 0.4)", 0.15), "rgba(1,2,3,0.15)");
  assert.equal(withAlpha("tomato", 0.15), null);
  assert.equal(withAlpha("", 0.15), null);
});

test("what the figure sets wins over the theme", () => {
  const out = themedLayout({ paper_bgcolor: "white", font: { color: "black" } },
                           { color: "#fafafa", family: "Source Sans" });
  assert.equal(out.paper_bgcolor, "white");
  assert.deepEqual(out.font, { color: "black", family: "Source Sans" });
  assert.deepEqual(themedLayout({}, {}).font, {});       // no theme known: plotly's own
});

test("the same traces text gives the same objects, so plotly does not recompute them", () => {
  const cache = new TraceCache();
  const text = JSON.stringify([{ type: "bar", y: [1, 2, 3] }]);
  const first = cache.get(text);
  assert.deepEqual(first, [{ type: "bar", y: [1, 2, 3] }]);
  assert.equal(cache.get(String(text)), first);
  const other = cache.get(JSON.stringify([{ type: "bar", y: [1, 2, 4] }]));
  assert.notEqual(other, first);
  assert.deepEqual(other[0].y, [1, 2, 4]);
  assert.deepEqual(cache.get(""), []);
});
