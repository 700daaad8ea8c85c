// The review queue, driven from the keyboard: a approve, r reject, c comment (Esc returns),
// j / k next / previous item. Each decision is POSTed to /ui/api/review/decide, which calls
// tunegate.review.decide; the answer's verdict moves the progress bar toward sign-off.
"use strict";

(function () {
  const data = document.getElementById("queue-data");
  if (!data) return;
  const items = [];
  for (const batch of JSON.parse(data.textContent)) {
    for (const item of batch.items) items.push({ batch: batch.batch_id, ...item });
  }
  if (!items.length) return;
  const comment = document.getElementById("comment");
  const card = document.getElementById("card");
  let cursor = Math.max(0, items.findIndex(i => !i.mine));
  let busy = false;

  function show() {
    const item = items[cursor];
    document.getElementById("position").textContent = `item ${cursor + 1} of ${items.length} (batch ${item.batch})`;
    document.getElementById("reasons").textContent = (item.reasons || []).join(", ");
    document.getElementById("item-text").textContent = item.text;
    document.getElementById("item-predicted").textContent = item.predicted;
    document.getElementById("item-label").textContent = item.label ?? "—";
    document.getElementById("item-confidence").textContent =
      item.confidence == null ? "—" : item.confidence.toFixed(3);
    const mine = document.getElementById("item-mine");
    mine.textContent = !item.mine ? "none yet"
      : (item.mine.approve ? "approved" : "rejected") + (item.mine.comment ? ` — “${item.mine.comment}”` : "");
    mine.className = !item.mine ? "" : item.mine.approve ? "pass" : "fail";
    card.dataset.itemId = item.id;
  }

  function showVerdict(batchId, verdict, status) {
    const bar = document.getElementById(`bar-${batchId}`);
    if (bar && verdict.items) bar.style.width = `${(100 * (verdict.items - verdict.pending)) / verdict.items}%`;
    const line = document.getElementById(`status-${batchId}`);
    if (line) { line.textContent = `${verdict.status}: ${verdict.reason}`; line.dataset.status = status; }
  }

  async function decideCurrent(approve) {
    if (busy) return;
    busy = true;
    const item = items[cursor];
    const result = await postJSON("/ui/api/review/decide",
      { item_id: item.id, approve, comment: comment.value.trim() });
    busy = false;
    if (!result.ok) { toast(`${result.status}: ${result.data.error}`, true); return; }
    item.mine = { approve, comment: comment.value.trim() };
    comment.value = "";
    showVerdict(item.batch, result.data.verdict, result.data.batch_status);
    if (result.data.signed_off) toast(`signed off: ${result.data.verdict.reason}`);
    else if (!result.data.counts) toast("recorded, but it does not count: you ran this training", true);
    const next = items.findIndex((i, n) => n > cursor && !i.mine);
    const first = items.findIndex(i => !i.mine);
    cursor = next >= 0 ? next : first >= 0 ? first : cursor;
    show();
  }

  document.addEventListener("keydown", event => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target === comment) {
      if (event.key === "Escape") { comment.blur(); card.focus(); }
      return;
    }
    if (event.target.matches && event.target.matches("input, textarea, select")) return;
    const actions = {
      a: () => decideCurrent(true),
      r: () => decideCurrent(false),
      c: () => comment.focus(),
      j: () => { cursor = Math.min(items.length - 1, cursor + 1); show(); },
      k: () => { cursor = Math.max(0, cursor - 1); show(); },
    };
    const action = actions[event.key];
    if (action) { event.preventDefault(); action(); }
  });
  show();
  card.focus();
})();
