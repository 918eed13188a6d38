// The dashboard's live updates. The page's parts marked data-live are redrawn from their
// server-rendered fragment when an event says something they show changed; a run page's
// output grows by text nodes (never markup). Server-sent events first; polling every 2 s
// when they fail (a proxy that closes them, a browser without EventSource).
(function () {
  "use strict";

  var body = document.body;
  var baseEvents = body.getAttribute("data-events");
  if (!baseEvents) return; // the sign-in page
  var output = document.getElementById("output");
  var conn = document.getElementById("conn");

  var MIN_GAP_MS = 250; // between two redraws of one part
  var POLL_MS = 2000;
  var GIVE_UP_AFTER = 3; // stream errors in a row before polling
  var RETRY_STREAM_MS = 30000; // while polling, try the stream again this often

  var parts = {}; // id -> {busy, again, last}
  var source = null;
  var failures = 0;
  var pollTimer = null;
  var outputDone = false;
  var seen = 0;

  function say(state) {
    body.setAttribute("data-live-state", state);
    if (conn) {
      conn.textContent = state;
      conn.className = "conn " + state;
    }
  }

  function regions() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-live]"));
  }

  function replace(id, html) {
    var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(id);
    var old = document.getElementById(id);
    if (fresh && old) old.replaceWith(document.importNode(fresh, true));
  }

  function refresh(id) {
    var part = parts[id] || (parts[id] = { busy: false, again: false, last: 0 });
    if (part.busy) {
      part.again = true;
      return;
    }
    part.busy = true;
    setTimeout(function () {
      var region = document.getElementById(id);
      part.again = false;
      part.last = Date.now();
      if (!region) {
        part.busy = false;
        return;
      }
      fetch(region.getAttribute("data-live"), { credentials: "same-origin" })
        .then(function (response) {
          if (response.redirected) {
            window.location.reload(); // signed out: the page goes to the sign-in form
            throw new Error("signed out");
          }
          if (!response.ok) throw new Error("HTTP " + response.status);
          return response.text();
        })
        .then(function (html) { replace(id, html); })
        .catch(function () { /* the next event or poll tries again */ })
        .then(function () {
          part.busy = false;
          if (part.again) refresh(id);
        });
    }, Math.max(0, part.last + MIN_GAP_MS - Date.now()));
  }

  function refreshAll() {
    regions().forEach(function (region) { refresh(region.id); });
  }

  function wants(region, kind, data) {
    var on = (region.getAttribute("data-live-on") || "").split(" ");
    if (on.indexOf(kind) < 0) return false;
    var run = region.getAttribute("data-live-run");
    var job = region.getAttribute("data-live-job");
    if (kind === "run" && run && run !== data.run_id) return false;
    if (kind === "run" && job && job !== data.job_name) return false;
    return true;
  }

  function changed(kind, data) {
    seen += 1;
    body.setAttribute("data-events-seen", String(seen));
    regions().forEach(function (region) {
      if (wants(region, kind, data)) refresh(region.id);
    });
  }

  function append(attempt, text) {
    if (!output) return;
    var atBottom = output.scrollTop + output.clientHeight >= output.scrollHeight - 4;
    var current = Number(output.getAttribute("data-attempt"));
    if (attempt !== current) {
      if (current > 0) {
        var gap = output.textContent && !/\n$/.test(output.textContent) ? "\n" : "";
        output.append(document.createTextNode(gap + "── attempt " + attempt + " ──\n"));
      }
      output.setAttribute("data-attempt", String(attempt));
      output.setAttribute("data-offset", "0");
    }
    if (text) {
      output.append(document.createTextNode(text));
      var none = document.getElementById("no-output");
      if (none) none.remove();
    }
    if (atBottom) output.scrollTop = output.scrollHeight;
  }

  function streamUrl() {
    if (!output) return baseEvents;
    var url = new URL(baseEvents, window.location.href);
    url.searchParams.set("attempt", output.getAttribute("data-attempt") || "0");
    url.searchParams.set("offset", output.getAttribute("data-offset") || "0");
    return url.pathname + url.search;
  }

  function connect() {
    if (!window.EventSource) {
      poll();
      return;
    }
    source = new EventSource(streamUrl());
    source.addEventListener("open", function () {
      failures = 0;
      stopPolling();
      say("live");
      refreshAll(); // whatever changed while the page loaded or the stream was down
    });
    source.addEventListener("run", function (e) { changed("run", JSON.parse(e.data)); });
    source.addEventListener("overview", function (e) { changed("overview", JSON.parse(e.data)); });
    source.addEventListener("output", function (e) {
      var data = JSON.parse(e.data);
      append(data.attempt, data.text);
      var id = (e.lastEventId || "").split(":");
      if (output && id.length === 2) output.setAttribute("data-offset", id[1]);
    });
    source.addEventListener("error", function () {
      failures += 1;
      say("reconnecting");
      if (failures >= GIVE_UP_AFTER || source.readyState === EventSource.CLOSED) {
        source.close();
        source = null;
        poll();
        setTimeout(function () {
          if (!source) {
            failures = 0;
            connect();
          }
        }, RETRY_STREAM_MS);
      }
    });
  }

  function pollOutput() {
    if (!output || outputDone) return;
    var url = new URL(output.getAttribute("data-poll"), window.location.href);
    url.searchParams.set("attempt", output.getAttribute("data-attempt") || "0");
    url.searchParams.set("offset", output.getAttribute("data-offset") || "0");
    fetch(url.pathname + url.search, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) return;
        data.parts.forEach(function (part) { append(part.attempt, part.text); });
        output.setAttribute("data-attempt", String(data.attempt));
        output.setAttribute("data-offset", String(data.offset));
        outputDone = data.done;
      })
      .catch(function () { /* the next poll tries again */ });
  }

  function poll() {
    if (pollTimer) return;
    say("polling");
    var tick = function () {
      refreshAll();
      pollOutput();
    };
    tick();
    pollTimer = setInterval(tick, POLL_MS);
  }

  function stopPolling() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
  }

  say("connecting");
  connect();
})();
