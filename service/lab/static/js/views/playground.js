// Playground: data (generated or stored), a model, an optimizer; train and watch the boundary bend.

import { get, post } from "../api.js";
import { makeGrid } from "../boundary.js";
import { GENERATORS, LOSS_FORMULA, MODEL_TYPES, datasetPoints, generatedDataset, generatorSpec, planeDatasets } from "../datasets.js";
import { dataBounds, drawBoundary, drawCurves } from "../plots.js";
import { readParams, writeParams } from "../state.js";
import { JobFollower, isTerminal } from "../training.js";
import { $, duration, field, fmt, h, pct, select, showError, shortId } from "../ui.js";

const DEFAULTS = {
  src: "gen", kind: "xor", n: 400, noise: 0.1, classes: 3, dseed: 1, ds: "",
  model: "mlp", layers: "8,8", act: "tanh",
  opt: "adam", lr: 0.02, momentum: 0.9, epochs: 300, batch: 32, val: 0.2, l2: 0, seed: 42, job: "",
};
const OPTIMIZERS = [["gd", "gd (full batch)"], ["sgd", "sgd"], ["momentum", "momentum"], ["nesterov", "nesterov"], ["adam", "adam"]];
const DATA_KEYS = ["src", "kind", "n", "noise", "classes", "dseed", "ds"];

export class Playground {
  constructor(root) {
    this.root = root;
    this.settings = { ...DEFAULTS };
    this.activations = ["relu", "tanh", "sigmoid"];
    this.data = null; // {dataset, points, grid, task}
    this.follower = null;
    this.job = null;
    this.dataTimer = null;
  }

  async mount(params) {
    this.settings = readParams(params, DEFAULTS);
    this.build();
    try {
      const list = await get("/v1/activations");
      this.activations = list.items.map((a) => a.name).filter((n) => n !== "softmax");
      this.fillSelect("pg-act", this.activations, this.settings.act);
    } catch (err) {
      showError(err, "Activations");
    }
    await this.loadData();
    if (this.settings.job) this.attach(this.settings.job);
  }

  // A link opened while the lab is already on this view.
  async apply(params) {
    const next = readParams(params, DEFAULTS);
    if (JSON.stringify(next) === JSON.stringify(this.settings)) return;
    this.settings = next;
    this.fillForm();
    await this.loadData();
    if (next.job) this.attach(next.job);
  }

  build() {
    const s = this.settings;
    const num = (id, value, attrs = {}) => h("input", { id, name: id, type: "number", value, ...attrs });
    const form = h(
      "form",
      { class: "controls", id: "pg-form", "aria-label": "Playground settings", onsubmit: (e) => { e.preventDefault(); this.train(); } },
      h("fieldset", {},
        h("legend", {}, "Data"),
        field("Source", select("pg-src", [["gen", "generator"], ["stored", "stored dataset"]], s.src)),
        h("div", { class: "gen-only" },
          field("Generator", select("pg-kind", Object.entries(GENERATORS).map(([k, g]) => [k, g.label]), s.kind)),
          h("div", { class: "row" },
            field("Samples", num("pg-n", s.n, { min: 10, max: 20000, step: 10 })),
            field("Noise", num("pg-noise", s.noise, { min: 0, max: 5, step: 0.05 }))),
          h("div", { class: "row" },
            field("Classes", num("pg-classes", s.classes, { min: 2, max: 8 }), "spiral and blobs"),
            field("Data seed", num("pg-dseed", s.dseed, { min: 0, step: 1 }))),
          h("button", { type: "button", id: "pg-reseed", onclick: () => this.reseed() }, "New data seed")),
        h("div", { class: "stored-only" },
          field("Dataset", select("pg-ds", [["", "— choose a dataset with 2 features —"]], s.ds)))),
      h("fieldset", {},
        h("legend", {}, "Model"),
        field("Type", select("pg-model", [], s.model)),
        h("div", { class: "mlp-only row" },
          field("Hidden layers", h("input", { id: "pg-layers", name: "pg-layers", value: s.layers, inputmode: "numeric", pattern: "\\s*\\d+(\\s*,\\s*\\d+)*\\s*" }), "units per layer, e.g. 8,8"),
          field("Activation", select("pg-act", this.activations, s.act)))),
      h("fieldset", {},
        h("legend", {}, "Training"),
        h("div", { class: "row" },
          field("Optimizer", select("pg-opt", OPTIMIZERS, s.opt)),
          field("Learning rate", num("pg-lr", s.lr, { min: 0, step: "any" }))),
        h("div", { class: "row" },
          field("Momentum", num("pg-momentum", s.momentum, { min: 0, max: 0.999, step: 0.01 }), "momentum, nesterov"),
          field("L2", num("pg-l2", s.l2, { min: 0, step: "any" }))),
        h("div", { class: "row" },
          field("Epochs", num("pg-epochs", s.epochs, { min: 1, max: 1000000 })),
          field("Batch size", num("pg-batch", s.batch, { min: 1 }), "empty: full batch")),
        h("div", { class: "row" },
          field("Validation share", num("pg-val", s.val, { min: 0, max: 0.9, step: 0.05 })),
          field("Training seed", num("pg-seed", s.seed, { min: 0, step: 1 })))),
      h("div", { class: "buttons" },
        h("button", { type: "submit", id: "pg-train", class: "primary" }, "Train"),
        h("button", { type: "button", id: "pg-cancel", disabled: true, onclick: () => this.cancel() }, "Cancel"),
        h("button", { type: "button", id: "pg-link", onclick: () => this.copyLink() }, "Copy link")),
    );
    form.addEventListener("change", (e) => this.onChange(e));
    const output = h(
      "div",
      { class: "output" },
      h("div", { class: "status-line" },
        h("progress", { id: "pg-progress", max: 1, value: 0, "aria-label": "Training progress" }),
        h("span", { id: "pg-status", role: "status", "aria-live": "polite" }, "Choose data and a model, then Train.")),
      h("div", { class: "plots" },
        h("figure", {},
          h("div", { id: "pg-boundary", class: "plot square", role: "img", "aria-label": "Data and decision boundary" }),
          h("figcaption", { id: "pg-boundary-caption" }, "The data. Train a model to see its decision boundary.")),
        h("figure", {},
          h("div", { id: "pg-curves", class: "plot", role: "img", "aria-label": "Loss and accuracy per epoch" }),
          h("figcaption", { id: "pg-loss" }, "Loss and accuracy per epoch appear here while a job trains."))),
    );
    this.root.replaceChildren(h("h2", {}, "Playground"), h("div", { class: "playground" }, form, output));
    this.fillForm();
  }

  fillSelect(id, options, value) {
    const el = $(`#${id}`, this.root);
    el.replaceChildren(...options.map((o) => {
      const [v, text] = Array.isArray(o) ? o : [o, o];
      return h("option", { value: v, selected: String(v) === String(value) }, text);
    }));
  }

  fillForm() {
    const s = this.settings;
    for (const [key, value] of Object.entries(s)) {
      const el = $(`#pg-${key}`, this.root);
      if (el && key !== "model") el.value = value;
    }
    this.syncVisibility();
  }

  task() {
    if (this.settings.src === "stored") return this.data?.dataset?.task || "binary";
    return GENERATORS[this.settings.kind]?.task || "binary";
  }

  syncVisibility() {
    const s = this.settings;
    this.root.querySelector(".gen-only").hidden = s.src !== "gen";
    this.root.querySelector(".stored-only").hidden = s.src !== "stored";
    const types = MODEL_TYPES[this.task()];
    if (!types.some(([t]) => t === s.model)) s.model = types[0][0];
    this.fillSelect("pg-model", types, s.model);
    this.root.querySelector(".mlp-only").hidden = s.model !== "mlp";
    $("#pg-classes", this.root).disabled = !GENERATORS[s.kind]?.classes;
    $("#pg-momentum", this.root).disabled = !["momentum", "nesterov"].includes(s.opt);
    $("#pg-batch", this.root).disabled = s.opt === "gd";
    $("#pg-loss", this.root).textContent = `Loss: ${LOSS_FORMULA[this.task()]}`;
  }

  readForm() {
    const s = { ...this.settings };
    for (const key of Object.keys(DEFAULTS)) {
      const el = $(`#pg-${key}`, this.root);
      if (!el) continue;
      s[key] = typeof DEFAULTS[key] === "number" ? (el.value === "" ? "" : Number(el.value)) : el.value;
    }
    return s;
  }

  onChange() {
    const before = this.settings;
    this.settings = { ...this.readForm(), job: before.job };
    if (this.settings.src === "stored" && before.src !== "stored") this.loadStoredList();
    this.syncVisibility();
    this.saveUrl();
    if (DATA_KEYS.some((k) => before[k] !== this.settings[k])) {
      clearTimeout(this.dataTimer);
      this.dataTimer = setTimeout(() => this.loadData(), 250);
    }
  }

  saveUrl() {
    return writeParams("playground", this.settings);
  }

  reseed() {
    $("#pg-dseed", this.root).value = Math.floor(Math.random() * 100000);
    this.onChange();
  }

  async copyLink() {
    const url = this.saveUrl();
    try {
      await navigator.clipboard.writeText(url);
      $("#pg-status", this.root).textContent = "Link copied: it opens these settings, seeds included.";
    } catch {
      $("#pg-status", this.root).textContent = `Link: ${url}`;
    }
  }

  async loadStoredList() {
    try {
      const datasets = await planeDatasets();
      const options = [["", datasets.length ? "— choose a dataset with 2 features —" : "— no stored dataset has 2 features —"]];
      for (const d of datasets) options.push([d.id, `${d.name} (${d.n_samples} samples, ${d.task})`]);
      this.fillSelect("pg-ds", options, this.settings.ds);
    } catch (err) {
      showError(err, "Datasets");
    }
  }

  async loadData() {
    const s = this.settings;
    const token = (this.dataToken = Symbol("data"));
    try {
      let dataset;
      if (s.src === "stored") {
        await this.loadStoredList();
        if (!s.ds) {
          this.data = null;
          drawBoundary($("#pg-boundary", this.root), null, null, {});
          $("#pg-boundary-caption", this.root).textContent = "Choose a stored dataset with two features, or switch to a generator.";
          return;
        }
        dataset = await get(`/v1/datasets/${encodeURIComponent(s.ds)}`);
        if (dataset.n_features !== 2) {
          throw new Error(`dataset ${dataset.id} has ${dataset.n_features} features; the playground draws datasets with 2`);
        }
      } else {
        dataset = await generatedDataset(generatorSpec(s));
      }
      const points = await datasetPoints(dataset.id);
      if (token !== this.dataToken) return;
      const grid = makeGrid(dataBounds(points.X));
      this.data = { dataset, points, grid, task: dataset.task };
      this.syncVisibility();
      await this.draw(null);
      $("#pg-boundary-caption", this.root).textContent =
        `${dataset.name}: ${dataset.n_samples} samples (dataset ${shortId(dataset.id)}).`;
    } catch (err) {
      showError(err, "Data");
    }
  }

  draw(boundary) {
    const d = this.data;
    return drawBoundary($("#pg-boundary", this.root), d?.points, boundary, {
      bounds: d?.grid.bounds, task: d?.task, classes: d?.dataset.classes,
    });
  }

  trainingBody() {
    const s = this.settings;
    const body = {
      dataset_id: this.data.dataset.id,
      model: { type: s.model },
      optimizer: { name: s.opt, learning_rate: s.lr },
      epochs: s.epochs,
      batch_size: s.opt === "gd" || s.batch === "" ? null : s.batch,
      validation_fraction: s.val === "" ? 0 : s.val,
      l2: s.l2 === "" ? 0 : s.l2,
      seed: s.seed === "" ? null : s.seed,
    };
    if (s.model === "mlp") {
      body.model.hidden_layers = String(s.layers).split(",").map((v) => v.trim()).filter(Boolean).map(Number);
      body.model.activation = s.act;
    }
    if (["momentum", "nesterov"].includes(s.opt)) body.optimizer.momentum = s.momentum;
    return body;
  }

  async train() {
    if (!this.data) {
      showError(new Error("there is no data yet: choose a generator or a stored dataset"), "Train");
      return;
    }
    try {
      const job = await post("/v1/jobs", this.trainingBody());
      this.settings.job = job.id;
      this.saveUrl();
      this.attach(job.id, job);
    } catch (err) {
      showError(err, "Train");
    }
  }

  async attach(jobId, known) {
    this.follower?.stop();
    try {
      const job = known || (await get(`/v1/jobs/${encodeURIComponent(jobId)}`));
      if (this.data?.dataset.id !== job.dataset_id && job.dataset_id) {
        const dataset = await get(`/v1/datasets/${encodeURIComponent(job.dataset_id)}`);
        const points = await datasetPoints(dataset.id);
        this.data = { dataset, points, grid: makeGrid(dataBounds(points.X)), task: dataset.task };
      }
      this.job = job;
      this.showJob(job);
      await this.draw(null);
      const follower = new JobFollower(job.id, {
        grid: this.data?.grid,
        task: this.data?.task,
        handlers: {
          onProgress: (data) => this.showProgress(data),
          onStatus: (data) => this.showJob({ ...this.job, ...data }),
          onHistory: (history) => drawCurves($("#pg-curves", this.root), [{ label: "", history }]),
          onBoundary: (boundary) => this.draw(boundary).then(() => this.captionBoundary(boundary)),
          onEnd: (final) => this.showJob(final),
          onError: (err) => showError(err, "Job"),
        },
      });
      this.follower = follower;
      await follower.start();
    } catch (err) {
      showError(err, "Job");
    }
  }

  captionBoundary(boundary) {
    const what = boundary.kind === "binary" ? "P(class 1) with its 0.5 contour" : boundary.kind === "multiclass" ? "the predicted class" : "the prediction";
    const at = boundary.epoch !== undefined && boundary.epoch !== null ? ` after epoch ${boundary.epoch}` : " of the trained model";
    $("#pg-boundary-caption", this.root).textContent = `Shading: ${what}${at}, on a ${this.data.grid.n}×${this.data.grid.n} grid.`;
  }

  showProgress(data) {
    const p = data.progress || {};
    const m = data.metrics || {};
    $("#pg-progress", this.root).value = p.fraction || 0;
    const acc = m.val_accuracy ?? m.train_accuracy;
    $("#pg-status", this.root).textContent =
      `running · epoch ${p.epoch}/${p.total_epochs} · ETA ${duration(p.eta_s)} · loss ${fmt(m.train_loss)}` +
      (acc !== undefined ? ` · ${m.val_accuracy !== undefined ? "validation" : "train"} accuracy ${pct(acc)}` : "");
  }

  showJob(job) {
    this.job = { ...this.job, ...job };
    const j = this.job;
    const active = !isTerminal(j.status);
    $("#pg-cancel", this.root).disabled = !active || j.status === "cancelling";
    if (j.status === "queued") {
      $("#pg-status", this.root).textContent = `queued${j.queue_position !== null && j.queue_position !== undefined ? ` · ${j.queue_position} ahead` : ""} · job ${shortId(j.id)}`;
    } else if (j.status === "cancelling") {
      $("#pg-status", this.root).textContent = "cancelling…";
    } else if (!active) {
      const m = j.metrics || {};
      const acc = m.val_accuracy ?? m.train_accuracy;
      $("#pg-progress", this.root).value = j.progress?.fraction ?? 1;
      $("#pg-status", this.root).textContent =
        `${j.status} · ${j.progress?.epoch ?? "?"} epochs in ${duration(j.progress?.elapsed_s)}` +
        (acc !== undefined && acc !== null ? ` · ${m.val_accuracy !== undefined && m.val_accuracy !== null ? "validation" : "train"} accuracy ${pct(acc)}` : "") +
        (j.error ? ` · ${j.error.type}: ${j.error.detail}` : "") + ` · job ${shortId(j.id)}`;
    }
  }

  async cancel() {
    if (!this.follower) return;
    $("#pg-cancel", this.root).disabled = true;
    try {
      this.showJob(await this.follower.cancel());
    } catch (err) {
      showError(err, "Cancel");
    }
  }
}

