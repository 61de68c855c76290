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

// Admin actions (shown only to a key with scope admin): a form with data-action is sent as
// JSON (never form-encoded: the server refuses anything else), with the sign-in cookie;
// "{field}" in the URL is filled from that field. Success reloads the page.
(function () {
  "use strict";
  var forms = document.querySelectorAll("form[data-action]");

  function send(form, event) {
    event.preventDefault();
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { return; }
    var url = form.getAttribute("data-action");
    var body = {};
    Array.prototype.forEach.call(form.elements, function (field) {
      if (!field.name) { return; }
      var value = field.getAttribute("data-type") === "int" ? parseInt(field.value, 10) : field.value;
      var slot = "{" + field.name + "}";
      if (url.indexOf(slot) >= 0) { url = url.replace(slot, encodeURIComponent(field.value)); }
      else { body[field.name] = value; }
    });
    var result = form.querySelector(".action-result");
    var button = form.querySelector("button[type=submit]");
    function show(text, ok) {
      if (result) { result.textContent = text; result.className = "action-result " + (ok ? "ok" : "failed"); }
    }
    if (button) { button.disabled = true; }
    show("working…", true);
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body)
    })
      .then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (!response.ok) {
            var error = data && data.error;
            throw new Error((error && error.message) || ("HTTP " + response.status));
          }
          show("done", true);
          form.setAttribute("data-done", "true");
          window.location.reload();
        });
      })
      .catch(function (error) {
        show(error.message, false);
        if (button) { button.disabled = false; }
      });
  }

  Array.prototype.forEach.call(forms, function (form) {
    form.addEventListener("submit", function (event) { send(form, event); });
  });
})();

// Logs of a running attempt: a <pre data-follow="URL" data-offset="K"> asks URL for what
// was written after byte K about once a second (at once while more is waiting) and appends
// it as text, until the answer says done. The page itself reloads only when a status
// changes (the first script above).
(function () {
  "use strict";
  var KEEP = 1 << 20; // characters kept on the page; older text is dropped from the top

  function follow(pre) {
    var url = pre.getAttribute("data-follow");
    var offset = parseInt(pre.getAttribute("data-offset"), 10) || 0;
    var shown = pre.textContent.length;
    var delay = 1000;

    function schedule(ms) { window.setTimeout(poll, ms); }

    function append(text) {
      var bottom = pre.scrollHeight - pre.clientHeight - pre.scrollTop < 40;
      pre.appendChild(document.createTextNode(text));
      shown += text.length;
      while (shown > KEEP && pre.firstChild && pre.firstChild !== pre.lastChild) {
        shown -= pre.firstChild.textContent.length;
        pre.removeChild(pre.firstChild);
      }
      if (bottom) { pre.scrollTop = pre.scrollHeight; }
    }

    function stop(state, message) {
      pre.setAttribute("data-follow-state", state);
      if (message) { pre.setAttribute("title", message); }
    }

    function poll() {
      if (document.hidden) { schedule(delay); return; }
      var sep = url.indexOf("?") >= 0 ? "&" : "?";
      fetch(url + sep + "offset=" + offset, {
        credentials: "same-origin", headers: { "Accept": "application/json" }
      })
        .then(function (response) {
          return response.json().catch(function () { return {}; }).then(function (data) {
            if (response.status >= 400 && response.status < 500) {
              var error = data && data.error;
              stop("error", (error && error.message) || ("HTTP " + response.status));
              return;
            }
            if (!response.ok) { throw new Error("HTTP " + response.status); }
            if (data.text) { append(data.text); }
            offset = data.offset;
            pre.setAttribute("data-offset", String(offset));
            if (data.done) { stop("done"); return; }
            delay = 1000;
            schedule(data.more ? 0 : delay);
          });
        })
        .catch(function () { delay = Math.min(delay * 2, 30000); schedule(delay); });
    }

    pre.setAttribute("data-follow-state", "following");
    schedule(delay);
  }

  Array.prototype.forEach.call(document.querySelectorAll("pre[data-follow]"), follow);
})();

// A service's logs (the deployment page): a <pre data-follow-logs="URL" data-cursor="C">
// asks URL for the lines written after cursor C every two seconds and appends them as text;
// an error id becomes a link that filters the page by it.
(function () {
  "use strict";
  var KEEP = 2000; // lines kept on the page; older ones are dropped from the top

  function follow(pre) {
    var url = pre.getAttribute("data-follow-logs");
    var cursor = pre.getAttribute("data-cursor") || "";
    var delay = 2000;

    function schedule() { window.setTimeout(poll, delay); }

    function add(line) {
      var span = document.createElement("span");
      span.className = "log-line";
      span.appendChild(document.createTextNode(line.head));
      if (line.error_id && url.indexOf("error_id=") < 0) {
        var link = document.createElement("a");
        link.className = "error-id";
        link.href = "?error_id=" + encodeURIComponent(line.error_id) + "#logs";
        link.textContent = line.error_id;
        span.appendChild(document.createTextNode(" "));
        span.appendChild(link);
      }
      span.appendChild(document.createTextNode("\n" + (line.rest ? line.rest + "\n" : "")));
      pre.appendChild(span);
    }

    function poll() {
      if (document.hidden) { schedule(); return; }
      var sep = url.indexOf("?") >= 0 ? "&" : "?";
      fetch(url + sep + "after=" + encodeURIComponent(cursor), {
        credentials: "same-origin", headers: { "Accept": "application/json" }
      })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        })
        .then(function (data) {
          var bottom = pre.scrollHeight - pre.clientHeight - pre.scrollTop < 40;
          (data.lines || []).forEach(add);
          while (pre.children.length > KEEP) { pre.removeChild(pre.firstChild); }
          if (bottom) { pre.scrollTop = pre.scrollHeight; }
          cursor = data.cursor;
          pre.setAttribute("data-cursor", cursor);
          pre.setAttribute("data-polled", String(Date.now()));
          delay = 2000;
          schedule();
        })
        .catch(function () { delay = Math.min(delay * 2, 30000); schedule(); });
    }

    schedule();
  }

  Array.prototype.forEach.call(document.querySelectorAll("pre[data-follow-logs]"), follow);
})();
