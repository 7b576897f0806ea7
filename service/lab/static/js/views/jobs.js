// Jobs and models: what the service holds, a job's curves, a model's architecture, predict, export, delete.

import { del, download, get, post } from "../api.js";
import { drawCurves, purge } from "../plots.js";
import { writeParams } from "../state.js";
import { isTerminal } from "../training.js";
import { $, describeArchitecture, duration, field, fmt, h, pct, select, showError, shortId, when } from "../ui.js";

const REFRESH_MS = 2000;

export class JobsAndModels {
  constructor(root) {
    this.root = root;
    this.status = "";
    this.jobs = [];
    this.models = [];
    this.cursors = { jobs: null, models: null };
    this.timer = null;
    this.visible = false;
  }

  async mount() {
    this.root.replaceChildren(
      h("h2", {}, "Jobs and models"),
      h("section", { "aria-labelledby": "jobs-h" },
        h("div", { class: "toolbar" },
          h("h3", { id: "jobs-h" }, "Jobs"),
          field("Status", select("jobs-status", [["", "any"], "queued", "running", "cancelling", "succeeded", "failed", "cancelled"], "")),
          h("button", { type: "button", id: "jobs-refresh", onclick: () => this.refresh() }, "Refresh")),
        h("div", { class: "table-wrap" }, h("table", { id: "jobs-table" },
          h("thead", {}, h("tr", {}, ...["Job", "Status", "Progress", "Queue", "Model", "Created", ""].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}))),
        h("button", { type: "button", id: "jobs-more", hidden: true, onclick: () => this.loadJobs(true) }, "More jobs"),
        h("div", { id: "job-detail", class: "detail", hidden: true, tabindex: -1 })),
      h("section", { "aria-labelledby": "models-h" },
        h("div", { class: "toolbar" }, h("h3", { id: "models-h" }, "Models")),
        h("div", { class: "table-wrap" }, h("table", { id: "models-table" },
          h("thead", {}, h("tr", {}, ...["Model", "Task", "Architecture", "Parameters", "Accuracy", "Created", ""].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}))),
        h("button", { type: "button", id: "models-more", hidden: true, onclick: () => this.loadModels(true) }, "More models"),
        h("div", { id: "model-detail", class: "detail", hidden: true, tabindex: -1 })),
    );
    $("#jobs-status", this.root).addEventListener("change", (e) => {
      this.status = e.target.value;
      this.loadJobs();
    });
    await this.refresh();
  }

  show() {
    this.visible = true;
    writeParams("jobs", {});
    this.refresh();
  }

  hide() {
    this.visible = false;
    clearTimeout(this.timer);
  }

  async refresh() {
    await Promise.all([this.loadJobs(), this.loadModels()]);
  }

  schedule() {
    clearTimeout(this.timer);
    if (this.visible && this.jobs.some((j) => !isTerminal(j.status))) {
      this.timer = setTimeout(() => this.loadJobs(), REFRESH_MS);
    }
  }

  async loadJobs(more = false) {
    try {
      const q = new URLSearchParams({ limit: 50 });
      if (this.status) q.set("status", this.status);
      if (more && this.cursors.jobs) q.set("cursor", this.cursors.jobs);
      const page = await get(`/v1/jobs?${q}`);
      this.jobs = more ? [...this.jobs, ...page.items] : page.items;
      this.cursors.jobs = page.next_cursor;
      this.renderJobs();
    } catch (err) {
      showError(err, "Jobs");
    } finally {
      this.schedule();
    }
  }

  renderJobs() {
    const body = $("#jobs-table tbody", this.root);
    $("#jobs-more", this.root).hidden = !this.cursors.jobs;
    if (!this.jobs.length) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "empty" },
        this.status ? `No ${this.status} jobs.` : "No jobs yet. Train one in the Playground or the Compare view (or POST /v1/jobs).")));
      return;
    }
    body.replaceChildren(...this.jobs.map((job) => {
      const p = job.progress || {};
      return h("tr", { dataset: { job: job.id } },
        h("td", {}, h("code", { title: job.id }, shortId(job.id)), h("br"), h("small", {}, job.config?.model?.type || "")),
        h("td", {}, h("span", { class: `status ${job.status}` }, job.status)),
        h("td", {}, h("progress", { max: 1, value: p.fraction || 0, "aria-label": `progress of ${job.id}` }),
          ` ${p.epoch ?? 0}/${p.total_epochs ?? "?"}`, p.eta_s && !isTerminal(job.status) ? ` · ETA ${duration(p.eta_s)}` : ""),
        h("td", {}, job.queue_position ?? "—"),
        h("td", {}, job.model_id ? h("button", { type: "button", class: "link", onclick: () => this.showModel(job.model_id) }, shortId(job.model_id)) : "—"),
        h("td", {}, when(job.created_at)),
        h("td", { class: "actions" },
          h("button", { type: "button", onclick: () => this.showJob(job.id), "aria-label": `Curves of job ${job.id}` }, "Curves"),
          isTerminal(job.status) ? null : h("button", { type: "button", onclick: () => this.cancel(job.id), "aria-label": `Cancel job ${job.id}` }, "Cancel")));
    }));
  }

  async cancel(jobId) {
    try {
      await post(`/v1/jobs/${encodeURIComponent(jobId)}/cancel`, {});
      await this.loadJobs();
    } catch (err) {
      showError(err, "Cancel");
    }
  }

  async showJob(jobId) {
    const box = $("#job-detail", this.root);
    try {
      const [job, history] = await Promise.all([
        get(`/v1/jobs/${encodeURIComponent(jobId)}`),
        get(`/v1/jobs/${encodeURIComponent(jobId)}/metrics?max_points=1000`),
      ]);
      purge($("#job-curves", box));
      const m = job.metrics || {};
      const plane = job.config?.dataset_id ? h("a", { href: playgroundLink(job) }, "Open in the playground") : null;
      box.replaceChildren(
        h("h4", {}, `Job ${job.id}`, " ", h("span", { class: `status ${job.status}` }, job.status)),
        h("p", {}, `Loss ${fmt(m.train_loss)} (validation ${fmt(m.val_loss)}) · accuracy ${pct(m.train_accuracy)} (validation ${pct(m.val_accuracy)}) · best epoch ${job.best?.epoch ?? "—"} · `, plane),
        job.error ? h("p", { class: "error" }, `${job.error.type}: ${job.error.detail}`) : null,
        history.epochs.length
          ? h("div", { id: "job-curves", class: "plot", role: "img", "aria-label": `Loss and accuracy of job ${job.id}` })
          : h("p", { class: "empty" }, "No epoch has been recorded yet."),
        h("details", {}, h("summary", {}, "Resolved configuration"), h("pre", {}, JSON.stringify(job.config, null, 2))),
      );
      box.hidden = false;
      if (history.epochs.length) await drawCurves($("#job-curves", box), [{ label: "", history }]);
      box.focus();
    } catch (err) {
      showError(err, "Job");
    }
  }

  async loadModels(more = false) {
    try {
      const q = new URLSearchParams({ limit: 50 });
      if (more && this.cursors.models) q.set("cursor", this.cursors.models);
      const page = await get(`/v1/models?${q}`);
      this.models = more ? [...this.models, ...page.items] : page.items;
      this.cursors.models = page.next_cursor;
      this.renderModels();
    } catch (err) {
      showError(err, "Models");
    }
  }

  renderModels() {
    const body = $("#models-table tbody", this.root);
    $("#models-more", this.root).hidden = !this.cursors.models;
    if (!this.models.length) {
      body.replaceChildren(h("tr", {}, h("td", { colspan: 7, class: "empty" }, "No models yet: every finished job leaves one (or import one with POST /v1/models).")));
      return;
    }
    body.replaceChildren(...this.models.map((model) => h("tr", { dataset: { model: model.id } },
      h("td", {}, h("code", { title: model.id }, shortId(model.id))),
      h("td", {}, model.task),
      h("td", {}, describeArchitecture(model.architecture, model.n_features)),
      h("td", {}, model.n_parameters),
      h("td", {}, pct(model.metrics?.val_accuracy ?? model.metrics?.train_accuracy)),
      h("td", {}, when(model.created_at)),
      h("td", { class: "actions" }, h("button", { type: "button", onclick: () => this.showModel(model.id), "aria-label": `Details of model ${model.id}` }, "Details")))));
  }

  async showModel(modelId) {
    const box = $("#model-detail", this.root);
    try {
      const model = await get(`/v1/models/${encodeURIComponent(modelId)}`);
      const example = JSON.stringify([Array.from({ length: model.n_features }, () => 0.5)]);
      const input = h("textarea", { id: "predict-x", rows: 3, spellcheck: "false" }, example);
      const result = h("div", { id: "predict-result", "aria-live": "polite" });
      const layers = model.architecture.layers || [];
      box.replaceChildren(
        h("h4", {}, `Model ${model.id}`),
        h("p", {}, `${model.task}${model.classes ? ` · classes ${model.classes.join(", ")}` : ""} · ${model.n_parameters} parameters · loss ${model.architecture.loss}` +
          (model.job_id ? ` · trained by job ${model.job_id}` : " · imported") + (model.standardization ? " · standardizes its inputs" : "")),
        h("table", { class: "compact" },
          h("caption", {}, "Architecture"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Layer"), h("th", { scope: "col" }, "Units"), h("th", { scope: "col" }, "Activation"))),
          h("tbody", {},
            h("tr", {}, h("td", {}, "input"), h("td", {}, model.n_features), h("td", {}, "—")),
            ...layers.map((l, i) => h("tr", {}, h("td", {}, i === layers.length - 1 ? "output" : `hidden ${i + 1}`), h("td", {}, l.units), h("td", {}, l.activation))))),
        h("form", { class: "predict", onsubmit: (e) => { e.preventDefault(); this.predict(model, input.value, result); } },
          field(`Rows of X as JSON (${model.n_features} features each)`, input),
          h("button", { type: "submit" }, "Predict")),
        result,
        h("div", { class: "buttons" },
          h("button", { type: "button", onclick: () => download(`/v1/models/${model.id}/export?format=json`, `${model.id}.json`).catch((e) => showError(e, "Export")) }, "Export JSON"),
          h("button", { type: "button", onclick: () => download(`/v1/models/${model.id}/export?format=npz`, `${model.id}.npz`).catch((e) => showError(e, "Export")) }, "Export .npz"),
          h("button", { type: "button", class: "danger", onclick: () => this.deleteModel(model.id) }, "Delete model")),
      );
      box.hidden = false;
      box.focus();
    } catch (err) {
      showError(err, "Model");
    }
  }

  async predict(model, text, result) {
    let X;
    try {
      X = JSON.parse(text);
    } catch (err) {
      showError(new Error(`the rows are not valid JSON: ${err.message}`), "Predict");
      return;
    }
    try {
      const answer = await post(`/v1/models/${encodeURIComponent(model.id)}/predict`, { X });
      const rows = answer.predictions.map((p, i) => {
        const prob = answer.probabilities ? answer.probabilities[i] : null;
        const shown = prob === null ? "—" : Array.isArray(prob) ? prob.map((v) => fmt(v)).join(", ") : fmt(prob);
        return h("tr", {}, h("td", {}, JSON.stringify(X[i])), h("td", {}, String(p)), h("td", {}, shown));
      });
      result.replaceChildren(h("table", { class: "compact" },
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "x"), h("th", { scope: "col" }, "prediction"),
          h("th", { scope: "col" }, model.task === "binary" ? `P(${model.classes?.[1]})` : "probabilities"))),
        h("tbody", {}, ...rows)));
    } catch (err) {
      showError(err, "Predict");
    }
  }

  async deleteModel(modelId) {
    if (!confirm(`Delete model ${modelId}? Its job keeps its history.`)) return;
    try {
      await del(`/v1/models/${encodeURIComponent(modelId)}`);
      $("#model-detail", this.root).hidden = true;
      await this.loadModels();
    } catch (err) {
      showError(err, "Delete");
    }
  }
}

function playgroundLink(job) {
  const c = job.config;
  const params = new URLSearchParams({
    src: "stored", ds: c.dataset_id, model: c.model.type, opt: c.optimizer.name, lr: c.optimizer.learning_rate,
    epochs: c.epochs, batch: c.batch_size ?? "", val: c.validation_fraction, l2: c.l2, seed: c.seed, job: job.id,
  });
  if (c.model.type === "mlp") {
    params.set("layers", c.model.hidden_layers.join(","));
    params.set("act", c.model.activation);
  }
  return `#/playground?${params}`;
}
