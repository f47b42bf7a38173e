// edge-classifier's page, "teach a class": photos to POST /api/taught, the taught classes with their forget
// buttons. Uses $, authHeaders, errorText and askToken from app.js, loaded before it.
"use strict";

const MAX_TEACH_PHOTOS = 8;
let teachPhotos = []; // File objects chosen so far (a phone's camera gives one per shot)

function showChosen() {
  const names = teachPhotos.map((file) => file.name).join(", ");
  $("teach-chosen").textContent = teachPhotos.length ? `${teachPhotos.length} of ${MAX_TEACH_PHOTOS}: ${names}` : "no photo chosen";
}

function teachMessage(error, done) {
  $("teach-error").textContent = error || "";
  $("teach-done").textContent = done || "";
}

for (const input of [$("teach-camera"), $("teach-files")]) {
  input.addEventListener("change", () => {
    const added = Array.from(input.files);
    input.value = ""; // the same photo can be chosen again
    const room = MAX_TEACH_PHOTOS - teachPhotos.length;
    teachPhotos = teachPhotos.concat(added.slice(0, Math.max(0, room)));
    teachMessage(added.length > room ? `at most ${MAX_TEACH_PHOTOS} photos at a time: ${added.length - room} left out` : "");
    showChosen();
  });
}

$("teach-form").addEventListener("reset", () => {
  teachPhotos = [];
  teachMessage();
  showChosen();
});

function renderTaught(classes) {
  $("taught-list").replaceChildren(...classes.map(({ label, photos, refines }) => {
    const li = document.createElement("li");
    li.dataset.label = label;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = label;
    const about = document.createElement("span");
    about.className = "muted";
    about.textContent = `${photos} photo${photos === 1 ? "" : "s"} · ${refines ? "refines a trained class" : "new class"}`;
    const forget = document.createElement("button");
    forget.type = "button";
    forget.className = "plain";
    forget.textContent = "Forget";
    forget.addEventListener("click", () => forgetClass(label));
    li.append(name, about, forget);
    return li;
  }));
  $("taught-none").hidden = classes.length > 0;
}

// Every /api/taught answer lists the classes taught afterwards; an error is shown in the section.
async function askTaught(method, path, body) {
  let response;
  try {
    response = await fetch(path, { method, body, headers: authHeaders(), cache: "no-store" });
  } catch (e) {
    teachMessage("could not reach the device (network error)");
    return null;
  }
  if (response.status === 401) {
    askToken(await errorText(response));
    return null;
  }
  if (!response.ok) {
    teachMessage(await errorText(response));
    return null;
  }
  const doc = await response.json();
  renderTaught(doc.classes);
  return doc;
}

async function forgetClass(label) {
  const doc = await askTaught("DELETE", `/api/taught/${encodeURIComponent(label)}`);
  if (doc) teachMessage("", `forgot ${doc.label} (${doc.photos} photos)`);
}

$("teach-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!teachPhotos.length) {
    teachMessage("choose or take at least one photo of the class");
    return;
  }
  const form = new FormData();
  form.append("label", $("teach-label").value);
  for (const file of teachPhotos) form.append("photo", file, file.name);
  teachMessage("", `teaching from ${teachPhotos.length} photos…`);
  $("teach-submit").disabled = true;
  const doc = await askTaught("POST", "/api/taught", form);
  $("teach-submit").disabled = false;
  if (!doc) return;
  const kind = doc.action === "refined" ? "refined the trained class" : "taught";
  const skipped = doc.photos_skipped.map((p) => `${p.name}: ${p.reason}`).join("; ");
  teachMessage(skipped ? `skipped ${skipped}` : "", `${kind} ${doc.label} from ${doc.photos} photos`);
  teachPhotos = [];
  $("teach-label").value = "";
  showChosen();
});

$("token-form").addEventListener("submit", () => askTaught("GET", "/api/taught"));
askTaught("GET", "/api/taught");
