// Plotly figures: datasets as scatters, decision boundaries as heatmaps, learning curves.
// Colours are the Okabe–Ito palette (distinguishable with the common colour-vision deficiencies),
// and classes differ by marker shape too, so no information is carried by colour alone.

export const PALETTE = ["#E69F00", "#0072B2", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"];
const SYMBOLS = ["circle", "diamond", "square", "triangle-up", "x", "cross", "star", "pentagon"];
const BINARY_SCALE = [
  [0, "#E69F00"],
  [0.5, "#FFFFFF"],
  [1, "#0072B2"],
];
const CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

function ready() {
  if (!window.Plotly) throw new Error("Plotly.js did not load");
  return window.Plotly;
}

function layout(extra = {}) {
  return {
    margin: { l: 48, r: 12, t: 28, b: 40 },
    font: { family: "system-ui, sans-serif", size: 12 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "#fff",
    legend: { orientation: "h", y: -0.18 },
    ...extra,
  };
}

export function react(el, traces, extraLayout, config = {}) {
  return ready().react(el, traces, layout(extraLayout), { ...CONFIG, ...config });
}

export function purge(el) {
  if (window.Plotly && el) window.Plotly.purge(el);
}

// The square [lo, hi]² region around the data, with a margin, on which boundaries are drawn.
export function dataBounds(X) {
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (const [a, b] of X) {
    if (a < x0) x0 = a;
    if (a > x1) x1 = a;
    if (b < y0) y0 = b;
    if (b > y1) y1 = b;
  }
  if (!Number.isFinite(x0)) return { x: [-1, 1], y: [-1, 1] };
  const padX = Math.max((x1 - x0) * 0.08, 1e-3);
  const padY = Math.max((y1 - y0) * 0.08, 1e-3);
  return { x: [x0 - padX, x1 + padX], y: [y0 - padY, y1 + padY] };
}

function classTraces(data, classes) {
  const { X, y } = data;
  const groups = new Map();
  y.forEach((label, i) => {
    if (!groups.has(label)) groups.set(label, []);
    groups.get(label).push(X[i]);
  });
  const order = classes && classes.length ? classes : [...groups.keys()].sort();
  return order.map((label, k) => {
    const points = groups.get(label) || [];
    return {
      type: "scatter",
      mode: "markers",
      name: `class ${label}`,
      x: points.map((p) => p[0]),
      y: points.map((p) => p[1]),
      marker: {
        size: 6,
        color: PALETTE[k % PALETTE.length],
        symbol: SYMBOLS[k % SYMBOLS.length],
        line: { color: "#222", width: 0.8 },
      },
      hovertemplate: `class ${label}<br>(%{x:.3f}, %{y:.3f})<extra></extra>`,
    };
  });
}

function regressionTrace(data, range) {
  return {
    type: "scatter",
    mode: "markers",
    name: "samples",
    x: data.X.map((p) => p[0]),
    y: data.X.map((p) => p[1]),
    marker: {
      size: 6,
      color: data.y,
      colorscale: "Viridis",
      cmin: range[0],
      cmax: range[1],
      line: { color: "#222", width: 0.6 },
      showscale: false,
    },
    hovertemplate: "y = %{marker.color:.3f}<extra></extra>",
  };
}

// The traces of a boundary: heatmap (+ the 0.5 contour for binary models) under the data points.
// boundary = {xs, ys, z, kind: "binary"|"multiclass"|"regression", classes}
function boundaryTraces(boundary, valueRange) {
  if (!boundary) return [];
  const { xs, ys, z, kind } = boundary;
  if (kind === "binary") {
    return [
      {
        type: "heatmap", x: xs, y: ys, z, zmin: 0, zmax: 1, colorscale: BINARY_SCALE, opacity: 0.7,
        showscale: false, name: "P(class 1)", hovertemplate: "P = %{z:.3f}<extra></extra>",
      },
      {
        type: "contour", x: xs, y: ys, z, showscale: false, hoverinfo: "skip", name: "P = 0.5",
        contours: { start: 0.5, end: 0.5, size: 1, coloring: "none" }, line: { color: "#222", width: 2 },
      },
    ];
  }
  if (kind === "multiclass") {
    const k = boundary.classes.length;
    const scale = [];
    for (let i = 0; i < k; i++) {
      scale.push([i / k, PALETTE[i % PALETTE.length]], [(i + 1) / k, PALETTE[i % PALETTE.length]]);
    }
    return [
      {
        type: "heatmap", x: xs, y: ys, z, zmin: -0.5, zmax: k - 0.5, colorscale: scale, opacity: 0.45,
        showscale: false, name: "predicted class", hovertemplate: "class index %{z}<extra></extra>",
      },
    ];
  }
  return [
    {
      type: "heatmap", x: xs, y: ys, z, colorscale: "Viridis", zmin: valueRange[0], zmax: valueRange[1],
      opacity: 0.75, showscale: false, name: "prediction",
      hovertemplate: "ŷ = %{z:.3f}<extra></extra>",
    },
  ];
}

// A boundary figure is two Plotly plots stacked in one box with the same size, margins and axis
// ranges: the shading below, the data points above. While a job streams only the shading is drawn
// again: redrawing a plot redraws all of its traces, and a thousand SVG markers cost several times
// what the 100 × 100 heatmap does.
const MARGIN = { l: 44, r: 10, t: 10, b: 36 };

function layers(el) {
  if (!el.querySelector(":scope > .layer")) {
    el.classList.add("stack");
    el.append(
      Object.assign(document.createElement("div"), { className: "layer shading" }),
      Object.assign(document.createElement("div"), { className: "layer points" }),
      Object.assign(document.createElement("div"), { className: "legend" }),
    );
  }
  return {
    shading: el.querySelector(":scope > .shading"),
    points: el.querySelector(":scope > .points"),
    legend: el.querySelector(":scope > .legend"),
  };
}

function axes(range, visible) {
  const axis = { zeroline: false, fixedrange: true, showgrid: visible, showticklabels: visible, ticks: "" };
  return {
    xaxis: { ...axis, range: range.x, title: visible ? { text: "x₀" } : undefined, constrain: "domain" },
    yaxis: { ...axis, range: range.y, title: visible ? { text: "x₁" } : undefined, scaleanchor: "x", scaleratio: 1 },
  };
}

function legendItems(data, boundary, task, classes) {
  const items = [];
  if (data && task !== "regression") {
    const labels = classes && classes.length ? classes : [...new Set(data.y)].sort();
    labels.forEach((label, k) => {
      const mark = ["●", "◆", "■", "▲", "✕", "✚", "★", "⬟"][k % 8];
      items.push(`<span style="color:${PALETTE[k % PALETTE.length]}">${mark}</span> class ${escapeHtml(String(label))}`);
    });
  }
  if (boundary?.kind === "binary") items.push("<span class=\"line\"></span> P = 0.5");
  if (task === "regression") items.push("colour: y and ŷ");
  return items.join(" ");
}

function escapeHtml(text) {
  return text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
}

// Draws the data (and the boundary when given) into el. Returns a promise of both layers drawn.
export function drawBoundary(el, data, boundary, { bounds, task, classes } = {}) {
  const range = bounds || dataBounds(data?.X || []);
  const layer = layers(el);
  let valueRange = [0, 1];
  if (task === "regression" && data) valueRange = [Math.min(...data.y), Math.max(...data.y)];
  const base = { margin: MARGIN, showlegend: false, uirevision: "keep" };
  const drawn = [
    react(layer.shading, boundaryTraces(boundary, valueRange), { ...base, ...axes(range, true) }, {
      staticPlot: true,
    }),
  ];
  const key = [data, range.x.join(), range.y.join()];
  const last = el.__pointsKey || [];
  if (key.some((part, i) => part !== last[i])) {
    el.__pointsKey = key;
    const traces = data ? (task === "regression" ? [regressionTrace(data, valueRange)] : classTraces(data, classes)) : [];
    drawn.push(
      react(layer.points, traces, { ...base, ...axes(range, false), paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)" }, {
        displayModeBar: false,
      }),
    );
  }
  layer.legend.innerHTML = legendItems(data, boundary, task, classes);
  return Promise.all(drawn);
}

const SERIES = {
  train_loss: { name: "train loss", dash: "solid", axis: "y" },
  val_loss: { name: "validation loss", dash: "dot", axis: "y" },
  train_accuracy: { name: "train accuracy", dash: "solid", axis: "y2" },
  val_accuracy: { name: "validation accuracy", dash: "dot", axis: "y2" },
};

// runs = [{label, color, history: {epochs, train_loss, val_loss, train_accuracy?, val_accuracy?}}]
export function drawCurves(el, runs, { logLoss = false } = {}) {
  const traces = [];
  let hasAccuracy = false;
  for (const run of runs) {
    const history = run.history || { epochs: [] };
    for (const [key, style] of Object.entries(SERIES)) {
      const values = history[key];
      if (!values || !values.some((v) => v !== null && v !== undefined)) continue;
      if (style.axis === "y2") hasAccuracy = true;
      traces.push({
        type: "scatter",
        mode: "lines",
        name: runs.length > 1 ? `${run.label}: ${style.name}` : style.name,
        x: history.epochs,
        y: values,
        yaxis: style.axis,
        line: { color: run.color || (key.includes("loss") ? PALETTE[3] : PALETTE[1]), dash: style.dash, width: 2 },
        hovertemplate: `epoch %{x}: %{y:.4f}<extra>${run.label ? run.label + " " : ""}${style.name}</extra>`,
      });
    }
  }
  return react(el, traces, {
    xaxis: { title: { text: "epoch" }, anchor: hasAccuracy ? "y2" : "y" },
    yaxis: {
      title: { text: "loss" }, type: logLoss ? "log" : "linear", rangemode: "tozero",
      domain: hasAccuracy ? [0.55, 1] : [0, 1],
    },
    yaxis2: { title: { text: "accuracy" }, domain: [0, 0.42], range: [0, 1.02], visible: hasAccuracy },
    showlegend: true,
    uirevision: "keep",
  });
}

export function drawActivation(el, curve, { showBand = true } = {}) {
  const { x, y, dy } = curve.points;
  const shapes = [];
  if (showBand) {
    // Where |φ′| < 0.1 a unit passes almost no gradient back: shade those stretches.
    let start = null;
    for (let i = 0; i <= x.length; i++) {
      const small = i < x.length && Math.abs(dy[i]) < 0.1;
      if (small && start === null) start = x[i];
      if (!small && start !== null) {
        shapes.push({
          type: "rect", xref: "x", yref: "paper", x0: start, x1: x[i - 1], y0: 0, y1: 1,
          fillcolor: "rgba(0,0,0,0.06)", line: { width: 0 }, layer: "below",
        });
        start = null;
      }
    }
  }
  return react(
    el,
    [
      { type: "scatter", mode: "lines", name: "φ(z)", x, y, line: { color: PALETTE[1], width: 2.5 } },
      { type: "scatter", mode: "lines", name: "φ′(z)", x, y: dy, line: { color: PALETTE[3], width: 2, dash: "dash" } },
    ],
    {
      margin: { l: 36, r: 8, t: 8, b: 24 },
      xaxis: { zeroline: true, zerolinecolor: "#bbb" },
      yaxis: { zeroline: true, zerolinecolor: "#bbb" },
      shapes,
      showlegend: false,
    },
    { displayModeBar: false, staticPlot: false },
  );
}

export function drawOverlay(el, curves) {
  const traces = curves.map((curve, i) => ({
    type: "scatter", mode: "lines", name: curve.activation, x: curve.points.x, y: curve.points.y,
    line: { color: PALETTE[(i + 1) % PALETTE.length], width: 2.5, dash: ["solid", "dash", "dot"][i % 3] },
  }));
  return react(el, traces, {
    xaxis: { title: { text: "z" }, zeroline: true, zerolinecolor: "#bbb" },
    yaxis: { title: { text: "φ(z)" }, zeroline: true, zerolinecolor: "#bbb" },
    showlegend: true,
  });
}
