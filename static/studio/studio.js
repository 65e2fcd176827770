/* Small helpers shared by pages: live websocket streams with reconnect. */
(function () {
  "use strict";

  // Connect to a Studio websocket and call onEvent for each message. Reconnects with backoff;
  // the server replays stored history on every connect, and pages de-duplicate by key.
  function live(path, onEvent, onState) {
    var attempt = 0, closedByUs = false, socket = null;
    function connect() {
      var scheme = location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + location.host + path);
      socket.onopen = function () { attempt = 0; if (onState) onState("open"); };
      socket.onmessage = function (msg) { onEvent(JSON.parse(msg.data)); };
      socket.onclose = function (ev) {
        if (onState) onState("closed", ev.code);
        if (closedByUs || ev.code === 4401 || ev.code === 4404) return;
        attempt += 1;
        setTimeout(connect, Math.min(10000, 500 * Math.pow(2, attempt)));
      };
    }
    connect();
    return { close: function () { closedByUs = true; if (socket) socket.close(); } };
  }

  // Re-fetch an htmx region whenever the project's activity stream reports a change. The page
  // passes the time it was rendered, so only what happened after it triggers a refresh.
  function refreshOnProjectActivity(projectId, renderedAt, selector) {
    return live("/ws/projects/" + projectId + "/?since=" + renderedAt, function () {
      var el = document.querySelector(selector);
      if (el && window.htmx) window.htmx.trigger(el, "studio-refresh");
    });
  }


  // A server-rendered part of a page (#id) re-fetched from `url` when live events say it changed.
  // One fetch at a time; an event that arrives meanwhile asks for one more afterwards, so the last
  // change (a job finishing) is never lost to a request already in flight. Returns {schedule}.
  function panel(url, id) {
    var busy = false, again = false, timer = null;
    function refresh() {
      timer = null;
      if (busy) { again = true; return; }
      if (!url || !document.getElementById(id)) return;
      busy = true;
      fetch(url, { credentials: "same-origin", headers: { "HX-Request": "true" } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          var current = document.getElementById(id);
          if (!html || !current) return;
          var tpl = document.createElement("template");
          tpl.innerHTML = html.trim();
          var fresh = tpl.content.firstElementChild;
          if (!fresh) return;
          current.replaceWith(fresh);
          if (window.htmx) window.htmx.process(fresh);
        })
        .catch(function () { /* the next event or a reload shows the panel */ })
        .then(function () {
          busy = false;
          if (again) { again = false; schedule(); }
        });
    }
    function schedule() {
      if (timer === null) timer = setTimeout(refresh, 300);
    }
    return { schedule: schedule };
  }

  window.Studio = { live: live, refreshOnProjectActivity: refreshOnProjectActivity, panel: panel };
})();
