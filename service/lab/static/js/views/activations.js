// Activations: φ and φ′ of every activation the service knows, from GET /v1/activations/{name}/curve.

import { get } from "../api.js";
import { drawActivation, drawOverlay } from "../plots.js";
import { readParams, writeParams } from "../state.js";
import { $, field, fmt, h, showError } from "../ui.js";

const DEFAULTS = { start: -5, stop: 5, alpha: "" };
const SEED_FIGURE = ["relu", "sigmoid", "tanh"];

export class Activations {
  constructor(root) {
    this.root = root;
    this.settings = { ...DEFAULTS };
    this.list = [];
  }

  async mount(params) {
    this.settings = readParams(params, DEFAULTS);
    const s = this.settings;
    const form = h(
      "form",
      { class: "controls inline", "aria-label": "Curve range", onsubmit: (e) => { e.preventDefault(); this.redraw(); } },
      field("From z =", h("input", { id: "act-start", type: "number", value: s.start, step: "any" })),
      field("to z =", h("input", { id: "act-stop", type: "number", value: s.stop, step: "any" })),
      field("alpha", h("input", { id: "act-alpha", type: "number", value: s.alpha, step: "any", placeholder: "default" }), "leaky_relu and elu"),
      h("button", { type: "submit", class: "primary" }, "Draw"),
    );
    this.root.replaceChildren(
      h("h2", {}, "Activations"),
      h("p", { class: "lead" },
        "An activation φ bends the straight line z = w·x + b. Its derivative φ′ is what backpropagation multiplies by: ",
        "where |φ′| < 0.1 (shaded) a unit passes almost no gradient back."),
      form,
      h("figure", { class: "overlay" },
        h("div", { id: "act-overlay", class: "plot", role: "img", "aria-label": "ReLU, sigmoid and tanh on one axis" }),
        h("figcaption", {}, "ReLU, sigmoid and tanh on one axis.")),
      h("div", { id: "act-grid", class: "cards", "aria-live": "polite" }, h("p", { class: "empty" }, "Loading the activations…")),
    );
    try {
      this.list = (await get("/v1/activations")).items;
    } catch (err) {
      showError(err, "Activations");
      $("#act-grid", this.root).replaceChildren(h("p", { class: "empty" }, "The service did not list its activations."));
      return;
    }
    await this.redraw();
  }

  apply(params) {
    this.settings = readParams(params, DEFAULTS);
    $("#act-start", this.root).value = this.settings.start;
    $("#act-stop", this.root).value = this.settings.stop;
    $("#act-alpha", this.root).value = this.settings.alpha;
    return this.redraw();
  }

  async redraw() {
    const start = Number($("#act-start", this.root).value);
    const stop = Number($("#act-stop", this.root).value);
    const alpha = $("#act-alpha", this.root).value;
    this.settings = { start, stop, alpha };
    writeParams("activations", this.settings);
    const query = (item) => {
      const q = new URLSearchParams({ start, stop, num: 241 });
      if (alpha !== "" && "alpha" in (item.params || {})) q.set("alpha", alpha);
      return `/v1/activations/${encodeURIComponent(item.name)}/curve?${q}`;
    };
    let curves;
    try {
      curves = await Promise.all(this.list.map((item) => get(query(item))));
    } catch (err) {
      showError(err, "Curves");
      return;
    }
    const grid = $("#act-grid", this.root);
    grid.replaceChildren();
    const overlay = [];
    this.list.forEach((item, i) => {
      const curve = curves[i];
      if (SEED_FIGURE.includes(item.name)) overlay.push(curve);
      const range = item.output_range || {};
      const params = Object.entries(curve.params || {}).map(([k, v]) => `${k} = ${fmt(v)}`).join(", ");
      const plot = h("div", { class: "plot small", role: "img", "aria-label": `${item.name}: φ and φ′ from ${start} to ${stop}` });
      grid.append(
        h("article", { class: "card", id: `act-${item.name}` },
          h("h3", {}, item.name, params ? h("span", { class: "param" }, ` (${params})`) : null),
          plot,
          h("dl", {},
            h("dt", {}, "φ(z)"), h("dd", {}, h("code", {}, item.formula)),
            h("dt", {}, "φ′(z)"), h("dd", {}, h("code", {}, item.derivative_formula)),
            h("dt", {}, "range"), h("dd", {}, `(${range.min ?? "−∞"}, ${range.max ?? "+∞"})`),
            item.elementwise === false ? [h("dt", {}, "note"), h("dd", {}, "not elementwise: drawn as softmax([z, 0])₀")] : null)),
      );
      drawActivation(plot, curve);
    });
    await drawOverlay($("#act-overlay", this.root), overlay);
  }
}
