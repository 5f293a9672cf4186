// The page of `seq2seq serve`: translations coloured by probability, the cross-attention spotlight,
// a heatmap per layer, temperature samples, and the models side by side. Plain JavaScript, no build step.
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);
const state = { models: [], panels: {} };

async function api(path, body) {
  let response;
  try {
    response = await fetch(path, body === undefined ? {} : {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  } catch (e) {
    throw new Error(`cannot reach the server (${e.message})`);
  }
  const data = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(`${response.status}: ${data.error || response.statusText}`);
  return data;
}

function showError(error) {
  const box = $("#error");
  box.hidden = !error;
  box.textContent = error ? `Error ${error.message}` : "";
}

function pieceText(piece) {
  return piece.replaceAll("\u2581", " ");
}

function probColour(p) {
  return `hsl(${Math.round(120 * p)}, ${75 - 20 * p}%, ${82 - 2 * p}%)`;
}

// Spans for pieces; `probs` (optional) colours them, end markers are drawn faint.
function renderPieces(box, pieces, probs) {
  box.replaceChildren(...pieces.map((piece, i) => {
    const span = document.createElement("span");
    const marker = piece === "</s>" || piece === "<sep>";
    span.className = "piece" + (marker ? " marker" : "");
    span.textContent = marker ? ` ${piece}` : pieceText(piece);
    span.dataset.index = i;
    if (probs && probs[i] !== undefined) {
      span.style.backgroundColor = probColour(probs[i]);
      span.dataset.prob = probs[i];
      span.title = `p = ${probs[i].toFixed(3)}`;
    }
    return span;
  }));
}

function makePanel(model) {
  const node = $("#panel").content.firstElementChild.cloneNode(true);
  node.dataset.model = model.name;
  $(".name", node).textContent = model.name;
  $(".kind", node).textContent = `${model.kind === "gpt" ? "decoder-only" : "encoder–decoder"}, ` +
    `${model.parameters.toLocaleString("en")} parameters`;
  const layer = $(".layer", node);
  for (let k = 0; k < model.decoder_layers; k++) layer.add(new Option(String(k), String(k)));
  layer.value = String(model.decoder_layers - 1);
  const panel = { model, node, attention: null, active: null };
  layer.addEventListener("change", () => {
    if (panel.active === null) return;
    spotlight(panel, panel.active);
    heatmap(panel);
  });
  // Hovering lights the piece under the pointer; leaving goes back to the clicked piece, if any.
  $(".target", node).addEventListener("mouseover", (e) => spotlight(panel, e.target.dataset.index ?? panel.active));
  $(".target", node).addEventListener("mouseleave", () => spotlight(panel, panel.active));
  $(".target", node).addEventListener("click", (e) => {
    if (e.target.dataset.index === undefined) return;
    panel.active = Number(e.target.dataset.index);
    spotlight(panel, panel.active);
    heatmap(panel);
  });
  return panel;
}

function weights(panel) {
  return panel.attention.layers[Number($(".layer", panel.node).value)];
}

// Light every source piece in proportion to the weight target piece `row` puts on it.
function spotlight(panel, row) {
  const spans = [...panel.node.querySelectorAll(".source .piece")];
  const targets = [...panel.node.querySelectorAll(".target .piece")];
  targets.forEach((t) => t.classList.toggle("active", row !== null && row !== undefined && t.dataset.index === String(row)));
  if (row === null || row === undefined || !panel.attention) {
    spans.forEach((s) => { s.style.backgroundColor = ""; s.classList.remove("top"); delete s.dataset.weight; });
    return;
  }
  const w = weights(panel)[Number(row)];
  const top = Math.max(...w);
  spans.forEach((s, i) => {
    s.dataset.weight = w[i].toFixed(5);
    s.style.backgroundColor = `rgba(var(--lit), ${(top > 0 ? w[i] / top : 0).toFixed(3)})`;
    s.classList.toggle("top", w[i] === top);
  });
}

function heatmap(panel) {
  const a = panel.attention;
  if (!a) return;
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  head.appendChild(document.createElement("th"));
  for (const piece of a.source_pieces) head.appendChild(Object.assign(document.createElement("th"), { textContent: pieceText(piece) }));
  const body = table.createTBody();
  weights(panel).forEach((row, i) => {
    const tr = body.insertRow();
    tr.classList.toggle("active", i === panel.active);
    tr.appendChild(Object.assign(document.createElement("th"), { textContent: pieceText(a.target_pieces[i]) }));
    for (const w of row) {
      const td = tr.insertCell();
      td.style.backgroundColor = `rgba(40, 60, 160, ${w.toFixed(3)})`;
      td.title = w.toFixed(3);
    }
  });
  $(".heatmap", panel.node).replaceChildren(table);
}

async function translateIn(panel, text) {
  const { node, model } = panel;
  panel.attention = null;
  panel.active = null;
  $(".heatmap", node).replaceChildren();
  $(".note", node).textContent = "translating…";
  const result = (await api("/translate", { text, model: model.name })).results[0];
  const best = result.hypotheses[0];
  if (!best) {
    renderPieces($(".target", node), []);
    $(".confidence", node).textContent = "";
    $(".note", node).textContent = "(nothing to translate)";
    return;
  }
  renderPieces($(".target", node), [...best.pieces, "</s>"], best.probs);
  renderPieces($(".source", node), result.source_pieces);
  $(".confidence", node).textContent = `confidence: mean log-probability ${best.confidence.toFixed(3)} ` +
    `(geometric mean probability ${Math.exp(best.confidence).toFixed(3)})`;
  try {
    panel.attention = await api("/attention", { text, model: model.name });
    renderPieces($(".source", node), panel.attention.source_pieces);
    $(".note", node).textContent = "";
  } catch (e) {
    $(".note", node).textContent = `no attention picture: ${e.message}`;
  }
}

function visibleModels() {
  if ($("#compare").checked) return state.models;
  return state.models.filter((m) => m.name === $("#model").value);
}

async function translateAll(event) {
  if (event) event.preventDefault();
  const text = $("#source").value;
  const models = visibleModels();
  $("#panels").replaceChildren(...models.map((m) => state.panels[m.name].node));
  showError(null);
  $("#translate").disabled = true;
  try {
    await Promise.all(models.map((m) => translateIn(state.panels[m.name], text)));
  } catch (e) {
    showError(e);
  } finally {
    $("#translate").disabled = false;
  }
}

async function sampleFive() {
  const temperature = Number($("#temperature").value);
  const model = $("#model").value;
  const text = $("#source").value;
  const list = $("#samples");
  showError(null);
  try {
    const seeds = [1, 2, 3, 4, 5];
    const answers = await Promise.all(seeds.map((seed) =>
      api("/translate", { text, model, temperature, seed })));
    list.replaceChildren(...answers.map((answer, k) => {
      const item = document.createElement("li");
      const best = answer.results[0].hypotheses[0];
      const pieces = document.createElement("span");
      pieces.className = "pieces";
      if (best) renderPieces(pieces, best.pieces, best.probs);
      item.append(`T = ${temperature.toFixed(1)}, seed ${seeds[k]}:`, pieces,
        best ? `(mean log p ${best.confidence.toFixed(2)})` : "");
      return item;
    }));
  } catch (e) {
    showError(e);
  }
}

async function start() {
  try {
    state.models = (await api("/models")).models;
  } catch (e) {
    showError(e);
    return;
  }
  for (const m of state.models) {
    $("#model").add(new Option(`${m.name} (${m.kind === "gpt" ? "decoder-only" : "encoder–decoder"})`, m.name));
    state.panels[m.name] = makePanel(m);
  }
  $("#compare-box").hidden = state.models.length < 2;
  $("#form").addEventListener("submit", translateAll);
  $("#model").addEventListener("change", () => translateAll());
  $("#compare").addEventListener("change", () => translateAll());
  const slider = $("#temperature");
  let pending = null;
  slider.addEventListener("input", () => {
    $("#temperature-value").textContent = Number(slider.value).toFixed(1);
    if ($("#samples").children.length) {  // samples on show follow the slider
      clearTimeout(pending);
      pending = setTimeout(sampleFive, 250);
    }
  });
  $("#sample").addEventListener("click", sampleFive);
  document.body.dataset.ready = "true";
}

start();
