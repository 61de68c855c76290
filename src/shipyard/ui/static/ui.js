// shipyard UI: live pages. A page showing something that still runs carries
// data-poll (a JSON URL) and data-fingerprint; we fetch the JSON every few seconds and
// reload the page when its fingerprint changes. No framework, no third-party code.
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-poll");
  if (!url) { return; }
  var seen = body.getAttribute("data-fingerprint");
  var delay = 2000;

  function schedule() { window.setTimeout(poll, delay); }

  function poll() {
    if (document.hidden) { schedule(); return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        if (data.fingerprint !== seen) { window.location.reload(); return; }
        if (data.live) { delay = 2000; schedule(); }
        body.setAttribute("data-polled", String(Date.now()));
      })
      .catch(function () { delay = Math.min(delay * 2, 30000); schedule(); });
  }

  schedule();
})();
