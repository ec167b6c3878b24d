// The page of d2_instseg's web app: upload an image to POST /v1/predict, show the overlay beside
// the original, filter the instances by score client-side, and ask the server to re-render the
// overlay at the new threshold (the model does not run again).
"use strict";

const $ = (id) => document.getElementById(id);
let result = null; // the last answer of /v1/predict

function setStatus(text, error = false) {
  $("status").textContent = text;
  $("status").className = error ? "error" : "";
}

async function loadModels() {
  const answer = await fetch("/v1/models").then((r) => r.json());
  for (const m of answer.models) {
    const option = document.createElement("option");
    option.value = option.textContent = m.name;
    $("model").appendChild(option);
  }
}

function threshold() {
  return Number($("threshold").value);
}

function render(overlayToo = true) {
  if (!result) return;
  const t = threshold();
  $("threshold-value").textContent = t.toFixed(2);
  const head = $("table").tHead, body = $("table").tBodies[0];
  body.innerHTML = "";
  let rows;
  if (result.kind === "instance") {
    head.innerHTML = "<tr><th>class</th><th>score</th><th>area (px)</th></tr>";
    rows = result.instances
      .filter((i) => i.score >= t)
      .map((i) => [i.category_name, i.score.toFixed(3), i.area]);
    if (overlayToo) $("overlay").src = `${result.links["overlay.png"]}?threshold=${t}`;
  } else {
    head.innerHTML = "<tr><th>class</th><th>area (px)</th><th>share</th></tr>";
    rows = result.classes.map((c) => [c.name, c.area, (100 * c.fraction).toFixed(1) + " %"]);
    $("overlay").src = result.links["overlay.png"];
  }
  for (const cells of rows) {
    const tr = body.insertRow();
    for (const value of cells) tr.insertCell().textContent = value;
  }
  const q = `?threshold=${t}`;
  const links = [["overlay.png", "overlay (PNG)"], ["labels.png", "label image (PNG)"]];
  if (result.kind === "instance") links.unshift(["coco.json", "COCO results (JSON)"]);
  $("downloads").innerHTML = links
    .map(([k, text]) => `<a download href="${result.links[k]}${q}">${text}</a>`)
    .join(" · ");
  const n = result.kind === "instance" ? `${rows.length} of ${result.instances.length} instances` : `${rows.length} classes`;
  setStatus(`${result.model}: ${n}, ${result.timing.predict_ms.toFixed(0)} ms`);
}

async function upload(file) {
  if (!file) return;
  $("original").src = URL.createObjectURL(file);
  $("overlay").removeAttribute("src");
  setStatus(`Segmenting ${file.name} ...`);
  const form = new FormData();
  form.append("file", file);
  const model = encodeURIComponent($("model").value);
  const response = await fetch(`/v1/predict?model=${model}`, { method: "POST", body: form });
  const answer = await response.json();
  if (!response.ok) {
    result = null;
    setStatus(`${response.status}: ${answer.detail}`, true);
    return;
  }
  result = answer;
  $("threshold-row").hidden = result.kind !== "instance";
  render();
}

$("file").addEventListener("change", (e) => upload(e.target.files[0]));
// the table follows the slider; the overlay is re-rendered by the server when it is released
$("threshold").addEventListener("input", () => render(false));
$("threshold").addEventListener("change", () => render(true));
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  upload(e.dataTransfer.files[0]);
});
loadModels().catch((e) => setStatus(`Cannot list the models: ${e}`, true));
