// edge-classifier's page: the live preview and result, and "classify a photo". Plain JS, no build step.
"use strict";

const TOKEN_KEY = "edge-classifier-token";
const LATEST_MS = 500; // ~2 polls a second while the tab is shown
const LATEST_HIDDEN_MS = 5000; // and rarely while it is hidden
const FRAME_MS = 200; // /api/latest.jpg when polled (the server renders at most http.stream_fps)

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem(TOKEN_KEY);
let previewMode = null; // "stream": /stream.mjpg in the <img>; "poll": /api/latest.jpg fetched with the token
let latestTimer = null;
let frameTimer = null;
let frameUrl = null;
let started = false;
let upload = null;
let hasCatalogue = false; // the live result carries `similar`: photos go to /api/search, which answers it too
let liveSimilarKey = null; // the live list drawn last, so that a poll with the same items redraws nothing
const THUMBNAIL_ROUTE = "/api/catalogue/thumbnail/";
const THUMBNAILS_KEPT = 100;
const thumbnails = new Map(); // thumbnail URL -> Promise of a blob: URL (or null when it failed)

function authHeaders() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

function pct(score) {
  return `${(100 * score).toFixed(1)}%`;
}

async function errorText(response) {
  // Every error answer is {"error": "...", "status": N}; anything else is shown as its status line.
  try {
    const doc = await response.json();
    if (doc && doc.error) return `${doc.error} (HTTP ${response.status})`;
  } catch (e) { /* not JSON */ }
  return `HTTP ${response.status} ${response.statusText}`;
}

function renderBars(list, topK) {
  list.replaceChildren(...(topK || []).map(({ label, score }) => {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = label;
    const bar = document.createElement("span");
    bar.className = "bar";
    const fill = document.createElement("span");
    fill.style.width = pct(Math.max(0, Math.min(1, score)));
    bar.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = pct(score);
    li.append(name, bar, value);
    return li;
  }));
}

function renderTimings(dl, timings) {
  dl.replaceChildren(...Object.entries(timings || {}).map(([stage, ms]) => {
    const div = document.createElement("div");
    const dt = document.createElement("dt");
    dt.textContent = stage;
    const dd = document.createElement("dd");
    dd.textContent = `${ms.toFixed(1)} ms`;
    div.append(dt, dd);
    return div;
  }));
}

// -- similar catalogue items ---------------------------------------------------------------------------------

// Thumbnails are fetched with the token (an <img src> cannot send it) and shown as blob: URLs, kept for the tab.
function thumbnail(url) {
  if (!thumbnails.has(url)) {
    if (thumbnails.size >= THUMBNAILS_KEPT) {
      for (const kept of thumbnails.values()) kept.then((blobUrl) => blobUrl && URL.revokeObjectURL(blobUrl));
      thumbnails.clear();
    }
    const loaded = fetch(url, { headers: authHeaders() })
      .then((response) => (response.ok ? response.blob() : null))
      .then((blob) => (blob ? URL.createObjectURL(blob) : null))
      .catch(() => null);
    thumbnails.set(url, loaded);
    loaded.then((blobUrl) => { if (!blobUrl) thumbnails.delete(url); }); // asked again next time
  }
  return thumbnails.get(url);
}

function price(value) {
  return typeof value === "number" ? value.toFixed(2) : "";
}

function similarItem(item) {
  const li = document.createElement("li");
  li.dataset.id = item.id;
  const img = document.createElement("img");
  img.alt = "";
  img.width = 64;
  img.height = 64;
  thumbnail(item.thumbnail || THUMBNAIL_ROUTE + encodeURIComponent(item.id)).then((url) => {
    if (url) img.src = url;
  });
  const text = document.createElement("div");
  text.className = "item-text";
  let name = document.createElement("span");
  if (item.url && /^https?:/i.test(item.url)) {
    name = document.createElement("a");
    name.href = item.url;
    name.target = "_blank";
    name.rel = "noopener";
  }
  name.className = "item-name";
  name.textContent = item.name;
  text.append(name);
  if (typeof item.price === "number") {
    const cost = document.createElement("span");
    cost.className = "item-price";
    cost.textContent = price(item.price);
    text.append(cost);
  }
  const value = document.createElement("span");
  value.className = "value";
  value.textContent = pct(item.similarity);
  value.title = "cosine similarity";
  li.append(img, text, value);
  return li;
}

// Hidden when ITEMS is not a list (no catalogue for the serving model); "none close enough" when it is empty.
function renderSimilar(box, list, items) {
  box.hidden = !Array.isArray(items);
  list.replaceChildren(...(Array.isArray(items) ? items : []).map(similarItem));
  box.querySelector(".empty").hidden = !Array.isArray(items) || items.length > 0;
}

// -- token (http.auth: token) -------------------------------------------------------------------------------

function askToken(message) {
  stopPolling();
  stopPreview();
  previewMode = null;
  started = false;
  $("token-form").hidden = false;
  $("token-error").textContent = token ? message : "";
  $("status").textContent = "waiting for the access token";
  $("token-input").focus();
}

$("token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("token-input").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token-form").hidden = true;
  pollLatest();
});

// -- the live result ----------------------------------------------------------------------------------------

function stopPolling() {
  clearTimeout(latestTimer);
  latestTimer = null;
}

function scheduleLatest() {
  stopPolling();
  latestTimer = setTimeout(pollLatest, document.hidden ? LATEST_HIDDEN_MS : LATEST_MS);
}

async function pollLatest() {
  stopPolling();
  let response;
  try {
    response = await fetch("/api/latest", { headers: authHeaders(), cache: "no-store" });
  } catch (e) {
    $("live-error").textContent = "cannot reach the device; retrying";
    scheduleLatest();
    return;
  }
  if (response.status === 401) {
    askToken(await errorText(response));
    return;
  }
  if (!response.ok) {
    $("live-error").textContent = await errorText(response);
    scheduleLatest();
    return;
  }
  const doc = await response.json();
  $("live-error").textContent = "";
  renderLatest(doc);
  if (!started) {
    started = true;
    startPreview();
  }
  scheduleLatest();
}

function renderLatest(doc) {
  $("live-label").textContent = doc.label;
  $("live-score").textContent = pct(doc.score);
  $("fps").textContent = doc.fps.toFixed(1);
  $("frames").textContent = String(doc.frames_processed);
  $("camera").textContent = doc.camera;
  $("status").textContent = `model ${doc.model.name} ${doc.model.version} · camera ${doc.camera}`;
  const frame = doc.frame;
  $("frame-label").textContent = frame ? `${frame.label} ${pct(frame.score)}` : "–";
  renderBars($("live-topk"), frame ? frame.top_k : []);
  renderTimings($("live-timings"), frame ? frame.timing_ms : {});
  const similar = doc.result ? doc.result.similar : undefined;
  hasCatalogue = Array.isArray(similar);
  const key = JSON.stringify(similar === undefined ? null : similar.map((item) => [item.id, item.similarity]));
  if (key !== liveSimilarKey) {
    liveSimilarKey = key;
    renderSimilar($("live-similar"), $("live-similar-list"), similar);
  }
}

// -- the live preview ---------------------------------------------------------------------------------------

const preview = $("preview");

function startPreview() {
  previewMode = token ? "poll" : "stream";
  showPreview();
}

function showPreview() {
  if (document.hidden) return;
  if (previewMode === "stream") {
    preview.src = preview.dataset.stream;
  } else if (previewMode === "poll") {
    pollFrame();
  }
}

function stopPreview() {
  clearTimeout(frameTimer);
  frameTimer = null;
  // Closes the stream, so its slot on the device is freed; the error handler ignores an <img> without src.
  if (previewMode === "stream") preview.removeAttribute("src");
}

preview.addEventListener("error", () => {
  // The stream refused (all http.max_streams slots taken) or ended: fall back to polling single frames.
  if (previewMode === "stream" && preview.getAttribute("src")) {
    previewMode = "poll";
    preview.removeAttribute("src");
    frameTimer = setTimeout(pollFrame, 1000);
  }
});

async function pollFrame() {
  clearTimeout(frameTimer);
  let wait = FRAME_MS;
  try {
    const response = await fetch("/api/latest.jpg", { headers: authHeaders(), cache: "no-store" });
    if (response.status === 401) {
      askToken(await errorText(response));
      return;
    }
    if (response.ok) {
      const url = URL.createObjectURL(await response.blob());
      preview.src = url;
      if (frameUrl) URL.revokeObjectURL(frameUrl);
      frameUrl = url;
    } else {
      wait = 1000; // 503 before the first frame
    }
  } catch (e) {
    wait = 2000;
  }
  if (previewMode === "poll" && !document.hidden) frameTimer = setTimeout(pollFrame, wait);
}

document.addEventListener("visibilitychange", () => {
  if (!started) return;
  if (document.hidden) {
    stopPreview();
  } else {
    showPreview();
    pollLatest();
  }
});

// -- classify a photo ---------------------------------------------------------------------------------------

const classify = $("classify");

function setStage(stage, text) {
  classify.dataset.state = stage; // idle, uploading, classifying, done, error
  $("progress").hidden = stage !== "uploading" && stage !== "classifying";
  $("spinner").hidden = stage !== "classifying";
  if (text) $("progress-text").textContent = text;
}

// With a catalogue the photo goes to /api/search (the label, top-k and timings, and the similar items); without
// one, or when it answers 404 (no catalogue for the model now), to /api/predict.
function predict(blob, name, route = hasCatalogue ? "/api/search" : "/api/predict") {
  if (upload) upload.abort();
  $("predict-error").textContent = "";
  $("answer").hidden = true;
  const image = $("answer-image");
  if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
  image.src = URL.createObjectURL(blob);
  $("upload-progress").value = 0;
  setStage("uploading", `uploading ${name}…`);

  const form = new FormData();
  form.append("image", blob, name);
  const xhr = new XMLHttpRequest();
  upload = xhr;
  xhr.open("POST", route);
  for (const [key, value] of Object.entries(authHeaders())) xhr.setRequestHeader(key, value);
  xhr.timeout = 60000;
  xhr.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) $("upload-progress").value = event.loaded / event.total;
  });
  xhr.upload.addEventListener("load", () => {
    $("upload-progress").value = 1;
    setStage("classifying", "classifying…");
  });
  xhr.addEventListener("load", () => {
    upload = null;
    let doc = null;
    try {
      doc = JSON.parse(xhr.responseText);
    } catch (e) { /* not JSON */ }
    if (xhr.status === 404 && route === "/api/search") {
      hasCatalogue = false;
      predict(blob, name, "/api/predict");
      return;
    }
    if (xhr.status === 200 && doc) {
      renderAnswer(doc);
      setStage("done");
      return;
    }
    const message = doc && doc.error ? `${doc.error} (HTTP ${xhr.status})` : `HTTP ${xhr.status} ${xhr.statusText}`;
    $("predict-error").textContent = message;
    setStage("error");
    if (xhr.status === 401) askToken(message);
  });
  const failed = (text) => () => {
    upload = null;
    $("predict-error").textContent = text;
    setStage("error");
  };
  xhr.addEventListener("error", failed("could not reach the device (network error)"));
  xhr.addEventListener("timeout", failed("no answer within 60 s"));
  xhr.send(form);
}

function renderAnswer(doc) {
  $("answer-label").textContent = doc.label;
  $("answer-score").textContent = pct(doc.score);
  renderBars($("answer-topk"), doc.top_k);
  renderTimings($("answer-timings"), doc.timing_ms);
  renderSimilar($("answer-similar"), $("answer-similar-list"), doc.items);
  $("answer").hidden = false;
  $("answer").scrollIntoView({ block: "nearest", behavior: "smooth" }); // below the fold on a phone
}

for (const input of [$("camera-input"), $("file-input")]) {
  input.addEventListener("change", () => {
    const file = input.files[0];
    if (file) predict(file, file.name);
    input.value = ""; // the same photo can be chosen again
  });
}

$("examples").addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-src]");
  if (!button) return;
  const src = button.dataset.src;
  try {
    const response = await fetch(src);
    if (!response.ok) throw new Error(await errorText(response));
    predict(await response.blob(), src.split("/").pop());
  } catch (e) {
    $("predict-error").textContent = `could not load the example: ${e.message}`;
    setStage("error");
  }
});

setStage("idle");
pollLatest();
