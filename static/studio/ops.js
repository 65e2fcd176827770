/* The admin dashboard (/ops/).
 *
 * Charts: the server sends two plotly figures (queue depths, invocation rates) whose traces carry unix times
 * in `ts`; they are drawn in the viewer's local time, then the dashboard's websocket (/ws/ops/) replays the
 * samples stored since the page was rendered and streams new ones (about every 5 s, from celery beat).
 * Points are de-duplicated by sample time and appended with Plotly.extendTraces under a fixed uirevision,
 * so zoom and pan survive the stream. Each sample also updates the queue counters and refreshes the
 * workers, jobs and endpoints panels (one being typed in, or showing what an action just did, is left alone
 * for a while); a failed task refreshes the failed-tasks panel. Without samples (no beat running) the panels
 * refresh every 15 s.
 */
(function () {
  "use strict";

  var source = document.getElementById("ops-data");
  if (!source || !window.Studio) return;
  var data = JSON.parse(source.textContent);
  var CONFIG = { responsive: true, displaylogo: false };
  var seen = Object.create(null);
  var lastSampleAt = 0;
  window.studioOpsSamples = 0;      // samples drawn (stored history and live)
  window.studioOpsLiveSamples = 0;  // samples that arrived over the websocket
  window.studioOpsQueueDepths = null;

  function pad(n, width) { var s = String(n); while (s.length < (width || 2)) s = "0" + s; return s; }
  function localTime(ts) {
    // Plotly reads date strings as they are: local wall-clock time.
    var d = new Date(ts * 1000);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" +
      pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
  }

  // --- charts -----------------------------------------------------------------------------------------
  function Chart(divId, figure) {
    this.div = document.getElementById(divId);
    this.index = Object.create(null);  // trace key -> trace index
    this.count = 0;
    this.points = 0;
    var traces = (figure.data || []).map(function (trace, i) {
      var copy = Object.assign({}, trace);
      copy.x = (trace.ts || []).map(localTime);
      delete copy.ts;
      this.index[(trace.meta || {}).key || trace.name] = i;
      this.points += copy.x.length;
      return copy;
    }, this);
    (figure.data || []).forEach(function (trace) { (trace.ts || []).forEach(function (ts) { seen[ts] = true; }); });
    this.count = traces.length;
    this.ready = this.div && typeof Plotly !== "undefined"
      ? Promise.resolve(Plotly.newPlot(this.div, traces, figure.layout, CONFIG)) : Promise.reject(new Error("no plotly"));
    this.ready.catch(function () {});
  }

  // points: [[key, name, ts, y], ...] for one sample
  Chart.prototype.add = function (points) {
    var self = this;
    this.ready = this.ready.then(function () {
      var xs = [], ys = [], indices = [];
      points.forEach(function (p) {
        if (!(p[0] in self.index)) {
          Plotly.addTraces(self.div, { x: [localTime(p[2])], y: [p[3]], name: p[1], meta: { key: p[0] },
                                       type: "scatter", mode: "lines+markers", marker: { size: 4 } });
          self.index[p[0]] = self.count++;
        } else {
          xs.push([localTime(p[2])]);
          ys.push([p[3]]);
          indices.push(self.index[p[0]]);
        }
        self.points += 1;
      });
      if (indices.length) return Plotly.extendTraces(self.div, { x: xs, y: ys }, indices);
      return null;
    }).catch(function (err) { if (window.console) console.error("ops chart update failed", err); });
    return this.ready;
  };

  var queueChart = new Chart("chart-queues", data.queues_figure);
  var rateChart = new Chart("chart-invocations", data.invocations_figure);
  window.studioOpsCharts = { queues: queueChart, invocations: rateChart };
  window.studioOpsSamples = data.samples || 0;

  function drawSample(ev) {
    var queues = ev.queues || {};
    queueChart.add(Object.keys(queues).map(function (q) { return ["queue:" + q, q, ev.ts, queues[q]]; }));
    var rates = ev.invocations || {};
    var points = [["rps:total", "all endpoints", ev.ts, rates.total || 0]];
    var endpoints = rates.endpoints || {};
    // An endpoint with a trace but no traffic in this sample drew 0 requests/s.
    Object.keys(rateChart.index).forEach(function (key) {
      if (key.indexOf("rps:") === 0 && key !== "rps:total" && !(key.slice(4) in endpoints)) {
        points.push([key, key.slice(4), ev.ts, 0]);
      }
    });
    Object.keys(endpoints).forEach(function (id) {
      points.push(["rps:" + id, endpoints[id].name || id, ev.ts, endpoints[id].rps || 0]);
    });
    rateChart.add(points);
    Object.keys(queues).forEach(function (q) {
      var cell = document.querySelector("[data-queue='" + q + "']");
      if (cell) cell.textContent = queues[q] === null ? "—" : String(queues[q]);
    });
    window.studioOpsQueueDepths = queues;
    var empty = document.getElementById("charts-empty");
    if (empty) empty.hidden = true;
  }

  // --- panels -----------------------------------------------------------------------------------------
  // Each panel is re-fetched (its htmx partial) when the stream says things moved. Not with Studio.panel:
  // an action's answer (the panel with what it did) must win over a refresh that started before it, so each
  // panel counts the actions sent from it and drops a refresh that started under an older count.
  var PANEL_IDS = { workers: "ops-workers", jobs: "ops-jobs", endpoints: "ops-endpoints", failed: "ops-failed",
                    actions: "ops-actions", usage: "ops-usage" };
  var HOLD_MS = 10000;  // a panel showing what an action just did keeps it readable this long
  var panels = Object.create(null);
  Object.keys(PANEL_IDS).forEach(function (name) {
    if (data.panels && data.panels[name]) {
      panels[name] = { url: data.panels[name], id: PANEL_IDS[name], actions: 0, heldUntil: 0, loading: false };
    }
  });

  function typing(panel) {
    // Someone typing a new instance count: the refresh would throw their input away.
    var el = document.getElementById(panel.id);
    var active = document.activeElement;
    return !!(el && active && el.contains(active) && active.tagName === "INPUT");
  }

  function refreshPanel(panel) {
    if (panel.loading || Date.now() < panel.heldUntil || typing(panel)) return;
    var actions = panel.actions;
    panel.loading = true;
    fetch(panel.url, { credentials: "same-origin", headers: { "HX-Request": "true" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        var current = document.getElementById(panel.id);
        if (!html || !current || actions !== panel.actions || Date.now() < panel.heldUntil || typing(panel)) return;
        var tpl = document.createElement("template");
        tpl.innerHTML = html.trim();
        var fresh = tpl.content.firstElementChild;
        if (!fresh) return;
        current.replaceWith(fresh);
        if (window.htmx) window.htmx.process(fresh);
      })
      .catch(function () { /* the next sample tries again */ })
      .then(function () { panel.loading = false; });
  }

  function refresh(names) {
    names.forEach(function (name) { if (panels[name]) refreshPanel(panels[name]); });
  }

  function panelOf(el) {
    var section = el && el.closest ? el.closest("[id^=ops-]") : null;
    var name = section && Object.keys(PANEL_IDS).filter(function (key) { return PANEL_IDS[key] === section.id; })[0];
    return name ? panels[name] : null;
  }

  // An action leaves its panel: refreshes already on their way are dropped, none starts until it is answered.
  document.body.addEventListener("htmx:beforeRequest", function (ev) {
    var panel = panelOf(ev.target);
    if (!panel) return;
    panel.actions += 1;
    panel.heldUntil = Date.now() + HOLD_MS;
  });

  // The answer (the panel with what the action did) stays a while; the log of admin actions shows it too.
  // beforeSwap, not afterRequest: once the panel is swapped out, events on the form no longer reach the body.
  document.body.addEventListener("htmx:beforeSwap", function (ev) {
    var panel = panelOf(ev.detail && ev.detail.target);
    if (!panel) return;
    panel.heldUntil = Date.now() + HOLD_MS;
    refresh(["actions"]);
  });

  // --- the stream -------------------------------------------------------------------------------------
  var state = document.getElementById("live-state");
  window.Studio.live(data.ws + "?since=" + data.since, function (ev) {
    if (ev.type === "sample") {
      if (seen[ev.ts]) return;
      seen[ev.ts] = true;
      lastSampleAt = Date.now();
      window.studioOpsSamples += 1;
      window.studioOpsLiveSamples += 1;
      drawSample(ev);
      refresh(["workers", "jobs", "endpoints"]);
    } else if (ev.type === "failed_task") {
      refresh(["failed"]);
    }
  }, function (s) {
    if (state) state.textContent = s === "open" ? "● live" : "reconnecting…";
  });

  // No beat, no samples: keep the panels fresh anyway.
  setInterval(function () {
    if (Date.now() - lastSampleAt > 15000) refresh(["workers", "jobs", "endpoints"]);
  }, 15000);
})();
