/* Training job page: live status, one plotly chart per metric family, and the log pane.
 *
 * The websocket replays the stored history on every connect and then streams live events, so a
 * reload mid-run shows everything so far and continues. Points are de-duplicated by (name, step)
 * and log lines by seq: a reconnect that replays history again draws nothing twice.
 */
(function () {
  "use strict";

  var root = document.getElementById("training-job");
  if (!root) return;

  var RANK = { pending: 0, running: 1, completed: 2, failed: 2, stopped: 2 };
  var shownStatus = root.dataset.status; // what the server-rendered panel shows
  var status = shownStatus;
  var chartsBox = document.getElementById("charts");
  var emptyNote = document.getElementById("charts-empty");
  var logs = document.getElementById("logs");
  var liveState = document.getElementById("live-state");

  var seenPoints = Object.create(null);
  var seenLogs = Object.create(null);
  var series = Object.create(null); // metric name -> {x: [], y: []} as plotted
  var charts = Object.create(null); // family -> {div, index: {name: trace index}, count, ready: Promise}
  var pendingPoints = Object.create(null); // name -> [[step, value], ...] not yet plotted
  var pendingLogs = [];
  var flushTimer = null;
  window.studioChartPoints = 0;

  function family(name) {
    var i = name.indexOf(":");
    return i < 0 ? name : name.slice(i + 1);
  }

  function ensureChart(fam) {
    if (charts[fam]) return charts[fam];
    var div = document.createElement("div");
    div.className = "chart";
    div.setAttribute("data-testid", "metric-chart");
    div.setAttribute("data-family", fam);
    // The loss chart leads; other families follow in arrival order.
    if (fam === "loss" && chartsBox.firstChild) chartsBox.insertBefore(div, chartsBox.firstChild);
    else chartsBox.appendChild(div);
    if (emptyNote) emptyNote.style.display = "none";
    var layout = {
      title: { text: fam, x: 0.01, xanchor: "left" },
      // uirevision keeps the user's zoom and pan while traces are extended.
      uirevision: "keep",
      margin: { l: 60, r: 15, t: 40, b: 45 },
      xaxis: { title: { text: "epoch" }, automargin: true },
      yaxis: { automargin: true, exponentformat: "e" },
      showlegend: true,
      legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom" },
      height: 320,
    };
    var chart = { div: div, index: Object.create(null), count: 0, ready: null };
    chart.ready = Promise.resolve(Plotly.newPlot(div, [], layout, { responsive: true, displaylogo: false }));
    charts[fam] = chart;
    return chart;
  }

  function plot(fam, names) {
    var chart = ensureChart(fam);
    chart.ready = chart.ready.then(function () {
      var xs = [], ys = [], indices = [], added = 0;
      names.forEach(function (name) {
        var points = pendingPoints[name];
        delete pendingPoints[name];
        if (!points || !points.length) return;
        points.sort(function (a, b) { return a[0] - b[0]; });
        var known = series[name];
        if (!(name in chart.index)) {
          series[name] = { x: points.map(function (p) { return p[0]; }), y: points.map(function (p) { return p[1]; }) };
          Plotly.addTraces(chart.div, {
            x: series[name].x.slice(), y: series[name].y.slice(), name: name, type: "scatter", mode: "lines+markers",
            line: { dash: name.indexOf("validation:") === 0 ? "solid" : "dot" },
          });
          chart.index[name] = chart.count++;
        } else if (points[0][0] < known.x[known.x.length - 1]) {
          // A point older than the last plotted one (missed during a reconnect): redraw the trace in order.
          points.forEach(function (p) { known.x.push(p[0]); known.y.push(p[1]); });
          var order = known.x.map(function (_, i) { return i; }).sort(function (a, b) { return known.x[a] - known.x[b]; });
          known.x = order.map(function (i) { return known.x[i]; });
          known.y = order.map(function (i) { return known.y[i]; });
          Plotly.restyle(chart.div, { x: [known.x.slice()], y: [known.y.slice()] }, [chart.index[name]]);
        } else {
          points.forEach(function (p) { known.x.push(p[0]); known.y.push(p[1]); });
          xs.push(points.map(function (p) { return p[0]; }));
          ys.push(points.map(function (p) { return p[1]; }));
          indices.push(chart.index[name]);
        }
        added += points.length;
      });
      if (indices.length) Plotly.extendTraces(chart.div, { x: xs, y: ys }, indices);
      window.studioChartPoints += added;
    }).catch(function (err) { if (window.console) console.error("chart update failed", err); });
  }

  function flush() {
    flushTimer = null;
    var byFamily = Object.create(null);
    Object.keys(pendingPoints).forEach(function (name) {
      var fam = family(name);
      (byFamily[fam] = byFamily[fam] || []).push(name);
    });
    if (typeof Plotly !== "undefined") {
      // Loss first so its chart is created (and placed) first.
      Object.keys(byFamily).sort(function (a, b) { return (a === "loss" ? -1 : 0) - (b === "loss" ? -1 : 0); })
        .forEach(function (fam) { plot(fam, byFamily[fam]); });
    }
    if (pendingLogs.length) {
      var atBottom = logs.scrollHeight - logs.scrollTop - logs.clientHeight < 40;
      var text = pendingLogs.map(function (ev) { return ev.line; }).join("\n") + "\n";
      pendingLogs = [];
      logs.appendChild(document.createTextNode(text));
      if (atBottom) logs.scrollTop = logs.scrollHeight;
    }
  }

  function schedule() {
    // Batch a burst (the history replay) into one redraw instead of one per point.
    if (flushTimer === null) flushTimer = setTimeout(flush, 80);
  }

  // Result plots live in the job panel, which htmx replaces when the status changes: draw every figure
  // that has not been drawn yet, on load and after each swap. The figure JSON sits next to its div.
  function renderResultPlots() {
    if (typeof Plotly === "undefined") return;
    var divs = document.querySelectorAll("[data-result-figure]");
    Array.prototype.forEach.call(divs, function (div) {
      if (div.dataset.rendered) return;
      var source = document.getElementById(div.dataset.resultFigure);
      if (!source) return;
      div.dataset.rendered = "1";
      try {
        var figure = JSON.parse(source.textContent);
        Plotly.newPlot(div, figure.data || [], figure.layout || {}, { responsive: true, displaylogo: false });
      } catch (err) {
        if (window.console) console.error("result plot failed", err);
      }
    });
    window.studioResultPlots = document.querySelectorAll("[data-result-figure][data-rendered]").length;
  }
  document.body.addEventListener("htmx:afterSettle", renderResultPlots);
  renderResultPlots();

  function refreshPanel() {
    if (window.htmx && root.dataset.panelUrl) {
      window.htmx.ajax("GET", root.dataset.panelUrl, { target: "#job-panel", swap: "outerHTML" });
    }
  }

  function setStatus(next, message) {
    if (!(next in RANK)) return;
    // A late "running" must not undo "completed": status only moves forward.
    if (RANK[next] < RANK[status]) return;
    status = next;
    var badge = document.getElementById("job-status");
    if (badge) {
      badge.textContent = next;
      badge.className = "badge " + next;
      if (message) badge.title = message;
    }
    if (RANK[next] === 2) {
      var stop = document.getElementById("stop-form");
      if (stop) stop.remove();
    }
    if (next !== shownStatus) {
      shownStatus = next;
      root.dataset.status = next;
      refreshPanel();
    }
  }

  function onEvent(ev) {
    if (ev.type === "metric") {
      var key = ev.name + "|" + ev.step;
      if (seenPoints[key]) return;
      seenPoints[key] = true;
      (pendingPoints[ev.name] = pendingPoints[ev.name] || []).push([ev.step, ev.value]);
      schedule();
    } else if (ev.type === "log") {
      if (ev.seq !== undefined && ev.seq !== null) {
        if (seenLogs[ev.seq]) return;
        seenLogs[ev.seq] = true;
      }
      pendingLogs.push(ev);
      schedule();
    } else if (ev.type === "status") {
      setStatus(ev.status, ev.message);
    }
  }

  function onState(state) {
    if (!liveState) return;
    liveState.textContent = state === "open" ? "· live" : (RANK[status] === 2 ? "" : "· reconnecting…");
  }

  function start() {
    if (!window.Studio) return setTimeout(start, 50);
    window.Studio.live(root.dataset.ws, onEvent, onState);
  }
  start();
})();
