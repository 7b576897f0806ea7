// The lab's entry point: hash routing between the views, and the API key form.

import { apiKey, setApiKey } from "./api.js";
import { currentRoute, writeParams } from "./state.js";
import { $, showError } from "./ui.js";
import { Activations } from "./views/activations.js";
import { Compare } from "./views/compare.js";
import { JobsAndModels } from "./views/jobs.js";
import { Playground } from "./views/playground.js";

const VIEWS = { activations: Activations, playground: Playground, compare: Compare, jobs: JobsAndModels };
const DEFAULT_VIEW = "playground";
const instances = {};

async function route() {
  const { view, params } = currentRoute();
  const name = view in VIEWS ? view : DEFAULT_VIEW;
  for (const key of Object.keys(VIEWS)) {
    const section = $(`#view-${key}`);
    section.hidden = key !== name;
    const link = $(`nav a[data-view="${key}"]`);
    if (key === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
    if (key !== name) instances[key]?.hide?.();
  }
  document.title = `${$(`nav a[data-view="${name}"]`).textContent} · Descent lab`;
  let instance = instances[name];
  try {
    if (!instance) {
      instance = instances[name] = new VIEWS[name]($(`#view-${name}`));
      await instance.mount(params);
      instance.show?.();
    } else if ([...params.keys()].length) {
      await instance.apply?.(params);
    } else {
      // Back to a view through the menu: it keeps its state, and the URL shows it again.
      if (instance.settings) writeParams(name, instance.settings);
      instance.show?.();
    }
  } catch (err) {
    showError(err, name);
  }
}

function setUpKeyForm() {
  const form = $("#key-form");
  const input = $("#api-key");
  const state = $("#api-key-state");
  const show = () => {
    state.textContent = apiKey() ? "A key is set for this tab." : "No key set: requests go without one.";
  };
  input.value = apiKey();
  show();
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey(input.value.trim());
    show();
  });
  $("#api-key-clear").addEventListener("click", () => {
    input.value = "";
    setApiKey("");
    show();
  });
}

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (event) => showError(event.reason, "Lab"));
setUpKeyForm();
if (!window.Plotly) showError(new Error("Plotly.js did not load, so nothing can be drawn"), "Lab");
route();
