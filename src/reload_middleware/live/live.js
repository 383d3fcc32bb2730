// reload-middleware live reload (development only). One file, two roles:
// - in a page, loaded by the tag the middleware adds before </body>;
// - as the SharedWorker the pages of one browser share, so that the browser keeps one
//   events request open for all its tabs.
// The server answers {version, wait}: the page reloads when the version is newer than
// the code that rendered it. A tab with unsaved form input is not reloaded: it shows a
// bar that reloads on a click, so nothing typed is lost. When only stylesheets changed
// ({styles: true}), the page swaps its stylesheets in place and keeps its state.
(function () {
  "use strict";
  var BACKOFF = [250, 500, 1000, 2000, 5000]; // ms after failed requests, then 5 s each
  var NAME = "reload-middleware-live";

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  // Ask the events endpoint forever. `oldest()` is the version of the oldest page
  // served here (Infinity: none); `newer(version, styles)` is told of each newer
  // version, and whether only stylesheets changed since `oldest()`.
  function poll(events, oldest, newer) {
    var seen = 0; // a version reported already: reloading did not bring it, do not ask again
    var failures = 0;
    var client = Math.random().toString(36).slice(2, 10); // names this loop in access logs
    (async function loop() {
      for (;;) {
        var known = Math.max(oldest(), seen);
        if (!isFinite(known)) { await sleep(1000); continue; }
        var wait;
        try {
          var response = await fetch(events + "?v=" + known + "&c=" + client,
                                     { cache: "no-store", credentials: "same-origin" });
          if (!response.ok) throw new Error(String(response.status));
          var answer = await response.json();
          failures = 0;
          if (answer.version > known) {
            seen = answer.version;
            newer(answer.version, answer.styles === true);
          }
          wait = answer.wait;
        } catch (error) {
          wait = BACKOFF[Math.min(failures++, BACKOFF.length - 1)];
        }
        await sleep(wait);
      }
    })();
  }

  if (typeof document === "undefined") { // the SharedWorker
    var ports = new Map(); // port -> version of its page
    var events = null;
    self.onconnect = function (connection) {
      var port = connection.ports[0];
      port.onmessage = function (message) {
        if (message.data.bye) { ports.delete(port); return; }
        ports.set(port, message.data.version);
        port.postMessage({ ready: true });
        if (events === null) {
          events = message.data.events;
          poll(events, function () { return Math.min.apply(null, Array.from(ports.values())); },
               function (version, styles) {
                 ports.forEach(function (v, p) {
                   if (v < version) p.postMessage({ version: version, styles: styles });
                 });
               });
        }
      };
      port.start();
    };
    return;
  }

  var me = document.currentScript;
  var src = new URL(me.src);
  var version = Number(src.searchParams.get("v")) || 0;
  // A reload for version N that brought older code (a failed preflight keeps the old
  // code): this tab has seen N already, so only a later change reloads it again.
  try {
    version = Math.max(version, Number(sessionStorage.getItem(NAME)) || 0);
    sessionStorage.removeItem(NAME);
  } catch (error) { /* storage refused: the worker remembers instead */ }
  var events = new URL("events", src).href;

  function unsaved() {
    var fields = document.querySelectorAll("input, textarea, select");
    for (var i = 0; i < fields.length; i++) {
      var field = fields[i];
      if (field.tagName === "SELECT") {
        for (var j = 0; j < field.options.length; j++) {
          if (field.options[j].selected !== field.options[j].defaultSelected) return true;
        }
      } else if (field.type === "checkbox" || field.type === "radio") {
        if (field.checked !== field.defaultChecked) return true;
      } else if (!/^(hidden|submit|button|reset|image|file)$/.test(field.type)) {
        if (field.value !== field.defaultValue) return true;
      }
    }
    return false;
  }

  function offer() {
    if (document.getElementById(NAME)) return;
    var bar = document.createElement("button");
    bar.id = NAME;
    bar.type = "button";
    bar.textContent = "The code changed: click to reload (unsaved input will be lost)";
    // Styles set through the DOM, not a style attribute: a strict style-src allows them.
    var s = bar.style;
    s.position = "fixed"; s.left = "0"; s.right = "0"; s.bottom = "0"; s.zIndex = "2147483647";
    s.padding = "8px"; s.font = "14px sans-serif"; s.background = "#ffd"; s.border = "1px solid #aa8";
    bar.addEventListener("click", function () { location.reload(); }); // asks anew after
    document.body.appendChild(bar);
  }

  // Each same-origin stylesheet is loaded again under a new query, and the old one
  // dropped once the new one has loaded (the page is never left without styles). A
  // link being replaced already is left to its replacement.
  function swap(v) {
    var links = document.querySelectorAll('link[rel~="stylesheet"][href]');
    for (var i = 0; i < links.length; i++) {
      var link = links[i];
      var url = new URL(link.href, location.href);
      if (link.replaced || url.origin !== location.origin) continue;
      url.searchParams.set("reload-middleware", String(v));
      var fresh = link.cloneNode(false);
      fresh.href = url.href;
      fresh.old = link;
      fresh.addEventListener("load", function () { this.old.remove(); });
      fresh.addEventListener("error", function () { this.old.replaced = false; this.remove(); });
      link.replaced = true;
      link.after(fresh);
    }
  }

  // `tell(v)`: let the other tabs' asker know this tab is at version v now.
  var tell = function () {};

  function newer(v, styles) {
    if (v <= version) return;
    if (styles) { swap(v); version = v; tell(v); return; }
    if (unsaved()) { offer(); return; }
    try { sessionStorage.setItem(NAME, String(v)); } catch (error) { /* see above */ }
    location.reload();
  }

  // No SharedWorker, or one refused (a content policy): the tab that holds a Web Lock
  // asks the server, and tells the others through a BroadcastChannel; each tab tells the
  // others its version when it opens. Without either, each tab asks on its own.
  function elect() {
    if (!(navigator.locks && window.BroadcastChannel)) {
      poll(events, function () { return version; }, newer);
      return;
    }
    var channel = new BroadcastChannel(NAME);
    var versions = new Map(); // other tabs -> their versions
    var tab = Math.random().toString(36).slice(2);
    channel.onmessage = function (message) {
      var data = message.data;
      if (data.hello !== undefined) versions.set(data.hello, data.version);
      if (data.bye !== undefined) versions.delete(data.bye);
      if (data.newer !== undefined) newer(data.newer, data.styles);
    };
    tell = function (v) { channel.postMessage({ hello: tab, version: v }); };
    tell(version);
    window.addEventListener("pagehide", function () { channel.postMessage({ bye: tab }); });
    navigator.locks.request(NAME, function () {
      poll(events,
           function () { return Math.min.apply(null, [version].concat(Array.from(versions.values()))); },
           function (v, styles) { channel.postMessage({ newer: v, styles: styles }); newer(v, styles); });
      return new Promise(function () {}); // held while this tab lives
    });
  }

  if (!window.SharedWorker) { elect(); return; }
  try {
    var worker = new SharedWorker(new URL("live.js", src).href, { name: NAME });
    // A worker the page's policy blocks may fail without a word: no answer, no worker.
    var fallen = false;
    var fall = function () { if (!fallen) { fallen = true; elect(); } };
    var silent = setTimeout(fall, 2000);
    worker.onerror = fall;
    worker.port.onmessage = function (message) {
      if (message.data.ready) { clearTimeout(silent); return; }
      newer(message.data.version, message.data.styles);
    };
    worker.port.start();
    tell = function (v) { worker.port.postMessage({ version: v, events: events }); };
    tell(version);
    window.addEventListener("pagehide", function () { worker.port.postMessage({ bye: true }); });
  } catch (error) {
    elect();
  }
})();
