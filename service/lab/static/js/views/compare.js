// Compare: the lesson. The same data, a linear model and an MLP trained side by side.

import { get, post } from "../api.js";
import { makeGrid } from "../boundary.js";
import { GENERATORS, datasetPoints, generatedDataset, generatorSpec } from "../datasets.js";
import { PALETTE, dataBounds, drawBoundary, drawCurves } from "../plots.js";
import { readParams, writeParams } from "../state.js";
import { JobFollower, isTerminal } from "../training.js";
import { $, field, h, pct, select, showError } from "../ui.js";

const DEFAULTS = {
  kind: "xor", n: 400, noise: 0.05, classes: 3, dseed: 1,
  layers: "16", act: "tanh", epochs: 300, lr: 0.02, seed: 7, linear: "", mlp: "",
};
const KINDS = ["xor", "circles", "moons", "spiral"];
const WHY = {
  xor: "no straight line puts XOR's opposite quadrants on the same side",
  circles: "no straight line can enclose the inner circle",
  moons: "a straight line can only cut across the interlocking moons",
  spiral: "straight lines through the origin cannot follow arms that wind around it",
};

export class Compare {
  constructor(root) {
    this.root = root;
    this.settings = { ...DEFAULTS };
    this.runs = {};
    this.followers = [];
  }

  async mount(params) {
    this.settings = readParams(params, DEFAULTS);
    const s = this.settings;
    const num = (id, value, attrs = {}) => h("input", { id, name: id, type: "number", value, ...attrs });
    const form = h(
      "form",
      { class: "controls inline", "aria-label": "Comparison settings", onsubmit: (e) => { e.preventDefault(); this.run(); } },
      field("Data", select("cmp-kind", KINDS.map((k) => [k, GENERATORS[k].label]), s.kind)),
      field("Samples", num("cmp-n", s.n, { min: 20, max: 20000, step: 10 })),
      field("Noise", num("cmp-noise", s.noise, { min: 0, max: 5, step: 0.05 })),
      field("Data seed", num("cmp-dseed", s.dseed, { min: 0 })),
      field("MLP hidden layers", h("input", { id: "cmp-layers", value: s.layers, inputmode: "numeric" })),
      field("Activation", select("cmp-act", ["tanh", "relu", "sigmoid", "gelu", "silu", "elu", "leaky_relu", "softplus", "identity"], s.act)),
      field("Epochs", num("cmp-epochs", s.epochs, { min: 1, max: 100000 })),
      field("Learning rate", num("cmp-lr", s.lr, { min: 0, step: "any" })),
      field("Training seed", num("cmp-seed", s.seed, { min: 0 })),
      h("button", { type: "submit", id: "cmp-run", class: "primary" }, "Train both"),
    );
    const panel = (key, title) =>
      h("figure", { class: "panel", id: `cmp-${key}-panel` },
        h("figcaption", {}, h("strong", { id: `cmp-${key}-title` }, title), " ",
          h("span", { class: "badge", id: `cmp-${key}-acc`, "aria-live": "polite" }, "not trained")),
        h("div", { id: `cmp-${key}-plot`, class: "plot square", role: "img", "aria-label": `${title}: decision boundary` }));
    this.root.replaceChildren(
      h("h2", {}, "Compare: a line against a network"),
      h("p", { class: "lead" },
        "The same data and seed, two models: a linear classifier, whose boundary w·x + b = 0 is a straight line, ",
        "and an MLP whose hidden layer bends it. Accuracies are on held-out points (25% of the data, never trained on)."),
      form,
      h("div", { class: "side-by-side" }, panel("linear", "Linear model"), panel("mlp", "MLP")),
      h("p", { id: "cmp-why", class: "why", "aria-live": "polite" }, "Press “Train both” to run the comparison."),
      h("figure", {},
        h("div", { id: "cmp-curves", class: "plot", role: "img", "aria-label": "Both models' loss and accuracy per epoch" }),
        h("figcaption", {}, "Loss and accuracy per epoch of both models (solid: training, dotted: held out).")),
    );
    this.root.querySelector("form").addEventListener("change", () => this.readForm());
    await this.loadData();
    if (s.linear && s.mlp) this.follow({ linear: s.linear, mlp: s.mlp });
  }

  async apply(params) {
    this.followers.forEach((f) => f.stop());
    return this.mount(params);
  }

  readForm() {
    const s = this.settings;
    for (const key of Object.keys(DEFAULTS)) {
      const el = $(`#cmp-${key}`, this.root);
      if (el) s[key] = typeof DEFAULTS[key] === "number" ? Number(el.value) : el.value;
    }
    writeParams("compare", s);
  }

  async loadData() {
    try {
      const spec = generatorSpec(this.settings);
      this.dataset = await generatedDataset(spec);
      this.points = await datasetPoints(this.dataset.id);
      this.grid = makeGrid(dataBounds(this.points.X));
      for (const key of ["linear", "mlp"]) this.drawPanel(key, null);
    } catch (err) {
      showError(err, "Data");
    }
  }

  drawPanel(key, boundary) {
    return drawBoundary($(`#cmp-${key}-plot`, this.root), this.points, boundary, {
      bounds: this.grid.bounds, task: this.dataset.task, classes: this.dataset.classes,
    });
  }

  config(type) {
    const s = this.settings;
    const model = { type };
    if (type === "mlp") {
      model.hidden_layers = String(s.layers).split(",").map((v) => Number(v.trim())).filter((v) => v > 0);
      model.activation = s.act;
    }
    return {
      dataset_id: this.dataset.id, model, optimizer: { name: "adam", learning_rate: s.lr },
      epochs: s.epochs, batch_size: 32, validation_fraction: 0.25, seed: s.seed,
    };
  }

  async run() {
    this.readForm();
    this.followers.forEach((f) => f.stop());
    $("#cmp-run", this.root).disabled = true;
    try {
      await this.loadData();
      const linearType = this.dataset.task === "multiclass" ? "softmax_regression" : "logistic_regression";
      const [linear, mlp] = await Promise.all([post("/v1/jobs", this.config(linearType)), post("/v1/jobs", this.config("mlp"))]);
      Object.assign(this.settings, { linear: linear.id, mlp: mlp.id });
      writeParams("compare", this.settings);
      await this.follow({ linear: linear.id, mlp: mlp.id });
    } catch (err) {
      showError(err, "Compare");
    } finally {
      $("#cmp-run", this.root).disabled = false;
    }
  }

  async follow(ids) {
    this.runs = {};
    $("#cmp-why", this.root).textContent = "Training both models…";
    const followers = Object.entries(ids).map(([key, id]) => {
      this.runs[key] = { history: null, job: null };
      const follower = new JobFollower(id, {
        grid: this.grid,
        task: this.dataset.task,
        handlers: {
          onProgress: (data) => this.badge(key, data.metrics, data.progress),
          onHistory: (history) => { this.runs[key].history = history; this.drawCurves(); },
          onBoundary: (boundary) => this.drawPanel(key, boundary),
          onEnd: (job) => { this.runs[key].job = job; this.finish(); },
          onError: (err) => showError(err, key === "linear" ? "Linear model" : "MLP"),
        },
      });
      get(`/v1/jobs/${encodeURIComponent(id)}`).then((job) => this.title(key, job)).catch((err) => showError(err, "Compare"));
      return follower;
    });
    this.followers = followers;
    await Promise.all(followers.map((f) => f.start().catch((err) => showError(err, "Compare"))));
  }

  title(key, job) {
    const m = job.config.model;
    const text = m.type === "mlp"
      ? `MLP 2→${m.hidden_layers.join("→")}→${this.dataset.task === "multiclass" ? this.dataset.classes.length : 1} (${m.activation})`
      : m.type.replace("_", " ");
    $(`#cmp-${key}-title`, this.root).textContent = text[0].toUpperCase() + text.slice(1);
  }

  badge(key, metrics = {}, progress) {
    const acc = metrics.val_accuracy;
    const epoch = progress ? ` at epoch ${progress.epoch}` : "";
    $(`#cmp-${key}-acc`, this.root).textContent = acc === undefined || acc === null ? "training…" : `held-out accuracy ${pct(acc)}${epoch}`;
  }

  drawCurves() {
    const runs = [];
    if (this.runs.linear?.history) runs.push({ label: "linear", color: PALETTE[0], history: this.runs.linear.history });
    if (this.runs.mlp?.history) runs.push({ label: "MLP", color: PALETTE[1], history: this.runs.mlp.history });
    drawCurves($("#cmp-curves", this.root), runs);
  }

  finish() {
    const linear = this.runs.linear?.job;
    const mlp = this.runs.mlp?.job;
    for (const [key, job] of [["linear", linear], ["mlp", mlp]]) {
      if (job) this.badge(key, job.metrics, null);
      if (job && job.status !== "succeeded") $(`#cmp-${key}-acc`, this.root).textContent += ` (${job.status})`;
    }
    if (!linear || !mlp || !isTerminal(linear.status) || !isTerminal(mlp.status)) return;
    const a = linear.metrics.val_accuracy;
    const b = mlp.metrics.val_accuracy;
    const why = WHY[this.settings.kind] || "a straight line cannot follow this data";
    $("#cmp-why", this.root).textContent =
      `Held out: linear ${pct(a)}, MLP ${pct(b)}. The linear model can only draw one straight line, and ${why}; ` +
      "the MLP's hidden units each draw a line, and its output bends their combination around the classes.";
  }
}
