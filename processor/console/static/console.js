// Progressive enhancement only: every page works without this file.
// The Run page polls its progress as JSON and moves the bar in place.
(function () {
  "use strict";
  var box = document.getElementById("run-progress");
  if (!box || box.getAttribute("data-active") !== "true") { return; }
  var url = box.getAttribute("data-progress-url");
  function set(id, text) { var el = document.getElementById(id); if (el) { el.textContent = text; } }
  function fmt(n) { return Number(n || 0).toLocaleString("en-US"); }
  function tick() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
      .then(function (p) {
        var bar = document.getElementById("run-bar");
        if (bar) { bar.value = p.percent; bar.textContent = p.percent + " %"; }
        set("run-done", fmt(p.done));
        set("run-scope", fmt(p.scope));
        set("run-percent", String(p.percent));
        set("run-records", fmt(p.records_spent));
        set("run-eta", p.eta_text || "");
        var state = document.getElementById("run-state");
        if (state) { state.textContent = p.state; }
        if (p.active) { setTimeout(tick, 1000); return; }
        // Finished: reload once for the final page (outcome, preview).
        window.location.reload();
      })
      .catch(function () { setTimeout(tick, 3000); });
  }
  setTimeout(tick, 1000);
})();
