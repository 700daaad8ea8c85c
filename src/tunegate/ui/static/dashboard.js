// Shared by every page: POST JSON to an action endpoint, show the answer, and the two-click
// confirmation of registry buttons (no dialogs: a second click within 5 s confirms).
"use strict";

async function postJSON(url, body) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = {};
  try { data = await response.json(); } catch (e) { data = { error: response.statusText }; }
  return { ok: response.ok, status: response.status, data };
}

function toast(message, isError) {
  const el = document.getElementById("toast");
  if (!el) return;
  el.textContent = message;
  el.className = isError ? "show error" : "show";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.className = ""; }, 6000);
}

function confirmThen(button, label, action) {
  button.addEventListener("click", async () => {
    if (button.dataset.armed !== "1") {
      button.dataset.armed = "1";
      button.dataset.label = button.textContent;
      button.textContent = label;
      setTimeout(() => {
        if (button.dataset.armed === "1") { button.dataset.armed = ""; button.textContent = button.dataset.label; }
      }, 5000);
      return;
    }
    button.dataset.armed = "";
    button.disabled = true;
    const result = await action();
    if (result.ok) {
      toast("done: " + (result.data.changes || []).map(c => `${c.ref} ${c.from || "new"} → ${c.to}`).join("; "));
      setTimeout(() => location.reload(), 600);
    } else {
      toast(`${result.status}: ${result.data.error}`, true);
      button.disabled = false;
      button.textContent = button.dataset.label;
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const promote = document.getElementById("promote");
  if (promote) {
    confirmThen(promote, `Confirm: promote to ${promote.dataset.to}`,
      () => postJSON("/ui/api/promote", { ref: promote.dataset.ref, to: promote.dataset.to }));
  }
  const rollback = document.getElementById("rollback");
  if (rollback) {
    confirmThen(rollback, "Confirm: roll back now",
      () => postJSON("/ui/api/rollback", { name: rollback.dataset.name, reason: "rollback from the dashboard" }));
  }
  document.querySelectorAll("button.open-review").forEach(button => {
    button.addEventListener("click", async () => {
      button.disabled = true;
      const result = await postJSON("/ui/api/review/open", { ref: button.dataset.ref });
      if (result.ok) { location.reload(); } else { toast(`${result.status}: ${result.data.error}`, true); button.disabled = false; }
    });
  });
});
