/* Experiments pages.
 *
 * Runs table: the ticked runs are kept per project in sessionStorage, so a selection survives paging,
 * sorting, filtering and the live refresh of the table; Compare opens compare/?runs=id,id. The chosen
 * columns live in the URL (cols=) and in localStorage, which a visit without cols= restores.
 *
 * Compare: the server renders every figure (plotly JSON in the page); this script draws them and keeps
 * them live. Each running run's websocket (/ws/training-jobs/<id>/) replays what happened since the page
 * read the database, then streams: points are de-duplicated by (run, metric, step) and appended with
 * Plotly.extendTraces. Layouts keep a fixed uirevision and extendTraces leaves axis ranges alone, so the
 * user's zoom and pan stay while points arrive. When a run finishes, the tables are fetched again.
 */
(function () {
  "use strict";

  var CONFIG = { responsive: true, displaylogo: false };

  // --- runs table -------------------------------------------------------------------------------
  function runsTable(root) {
    var project = root.dataset.project;
    var min = parseInt(root.dataset.min, 10) || 2;
    var max = parseInt(root.dataset.max, 10) || 50;
    var selectionKey = "studio.experiments.selection." + project;
    var columnsKey = "studio.experiments.columns." + project;

    // A visit without chosen columns gets the ones this user chose last time in this project.
    var params = new URLSearchParams(location.search);
    var saved = null;
    try { saved = localStorage.getItem(columnsKey); } catch (err) { /* storage disabled: defaults */ }
    if (!params.has("cols") && !params.has("col") && saved && saved !== root.dataset.defaultColumns) {
      params.set("cols", saved);
      location.replace(location.pathname + "?" + params.toString());
      return;
    }

    function loadSelection() {
      try { return JSON.parse(sessionStorage.getItem(selectionKey) || "[]"); } catch (err) { return []; }
    }
    var selected = loadSelection();
    function save() {
      try { sessionStorage.setItem(selectionKey, JSON.stringify(selected)); } catch (err) { /* kept in memory */ }
    }

    function render() {
      var boxes = document.querySelectorAll("#runs-live input[name=run]");
      var onPage = 0, ticked = 0;
      Array.prototype.forEach.call(boxes, function (box) {
        box.checked = selected.indexOf(box.value) >= 0;
        var row = box.closest("tr");
        if (row) row.classList.toggle("selected", box.checked);
        onPage += 1;
        if (box.checked) ticked += 1;
      });
      var all = document.getElementById("select-page");
      if (all) {
        all.checked = onPage > 0 && ticked === onPage;
        all.indeterminate = ticked > 0 && ticked < onPage;
      }
      var count = document.getElementById("selection-count");
      if (count) {
        count.hidden = selected.length === 0;
        count.textContent = selected.length + " selected" + (selected.length > max ? " (at most " + max + ")" : "");
      }
      var clear = document.getElementById("clear-selection");
      if (clear) clear.hidden = selected.length === 0;
      var button = document.getElementById("compare-button");
      if (button) {
        button.disabled = selected.length < min || selected.length > max;
        button.textContent = selected.length ? "Compare " + selected.length : "Compare";
      }
      window.studioSelectedRuns = selected.length;
    }

    function toggle(id, on) {
      var at = selected.indexOf(id);
      if (on && at < 0) selected.push(id);
      if (!on && at >= 0) selected.splice(at, 1);
    }

    document.addEventListener("change", function (ev) {
      var target = ev.target;
      if (!target || !target.matches) return;
      if (target.matches("#runs-live input[name=run]")) {
        toggle(target.value, target.checked);
      } else if (target.id === "select-page") {
        var boxes = document.querySelectorAll("#runs-live input[name=run]");
        Array.prototype.forEach.call(boxes, function (box) { toggle(box.value, target.checked); });
      } else {
        return;
      }
      save();
      render();
    });

    document.addEventListener("click", function (ev) {
      var target = ev.target;
      if (!target || !target.closest) return;
      if (target.closest("#clear-selection")) {
        selected = [];
        save();
        render();
      } else if (target.closest("#compare-button")) {
        ev.preventDefault();
        if (selected.length < min || selected.length > max) return;
        location.href = root.dataset.compareUrl + "?runs=" + selected.join(",");
      } else if (target.closest("#default-columns")) {
        try { localStorage.removeItem(columnsKey); } catch (err) { /* nothing saved */ }
        var next = new URLSearchParams(location.search);
        next.delete("cols");
        next.delete("col");
        next.delete("page");
        location.href = location.pathname + (next.toString() ? "?" + next.toString() : "");
      }
    });

    // The columns form: one cols=a,b parameter (shorter URLs), remembered for the next visit.
    document.addEventListener("submit", function (ev) {
      var form = ev.target;
      if (!form || form.id !== "columns-form") return;
      ev.preventDefault();
      var chosen = Array.prototype.map.call(form.querySelectorAll("input[name=col]:checked"), function (box) {
        return box.value;
      });
      var next = new URLSearchParams(location.search);
      next.delete("col");
      next.delete("page");
      next.set("cols", chosen.join(","));
      try { localStorage.setItem(columnsKey, chosen.join(",")); } catch (err) { /* URL keeps it */ }
      location.href = location.pathname + "?" + next.toString();
    });

    // Columns the URL names are this user's choice too (a shared link, the back button).
    if (params.has("cols")) {
      try { localStorage.setItem(columnsKey, params.get("cols")); } catch (err) { /* not kept */ }
    }
    document.body.addEventListener("htmx:afterSettle", render);
    render();
  }

  // --- compare ----------------------------------------------------------------------------------
  function comparePage(root, data) {
    var RANK = { pending: 0, running: 1, completed: 2, failed: 2, stopped: 2 };
    var box = document.getElementById("compare-charts");
    var runs = Object.create(null);
    data.runs.forEach(function (run) { runs[run.id] = run; });
    var charts = Object.create(null); // metric -> {div, ready: Promise}
    var seen = Object.create(null); // "run|metric|step" already drawn
    var pending = Object.create(null); // metric -> run -> [[step, value], ...]
    var flushTimer = null;
    var status = Object.create(null);
    var openRuns = Object.create(null);
    window.studioCompare = { charts: 0, points: 0, live: 0, parallel: 0, tables: 0 };

    function layoutFor(metric) {
      var layout = JSON.parse(JSON.stringify(data.empty_layout || {
        margin: { l: 60, r: 15, t: 40, b: 45 }, height: 320, xaxis: { title: { text: "step" } }, showlegend: true,
      }));
      layout.title = { text: metric, x: 0.01, xanchor: "left" };
      layout.uirevision = metric;
      return layout;
    }

    function addChart(metric, figure) {
      var div = document.createElement("div");
      div.className = "chart";
      div.setAttribute("data-testid", "compare-chart");
      div.dataset.metric = metric;
      box.appendChild(div);
      var empty = document.getElementById("charts-empty");
      if (empty) empty.hidden = true;
      (figure.data || []).forEach(function (trace) {
        (trace.x || []).forEach(function (step) { seen[trace.uid + "|" + metric + "|" + step] = true; });
      });
      var chart = { div: div, ready: null };
      chart.ready = Promise.resolve(Plotly.newPlot(div, figure.data || [], figure.layout || layoutFor(metric), CONFIG))
        .then(function () { window.studioCompare.charts += 1; });
      charts[metric] = chart;
      return chart;
    }

    function traceIndex(div, runId) {
      for (var i = 0; i < div.data.length; i++) if (div.data[i].uid === runId) return i;
      return -1;
    }

    function plotPending(metric) {
      var byRun = pending[metric];
      delete pending[metric];
      var chart = charts[metric] || addChart(metric, { data: [], layout: layoutFor(metric) });
      chart.ready = chart.ready.then(function () {
        var xs = [], ys = [], indices = [], added = 0;
        Object.keys(byRun).forEach(function (runId) {
          var points = byRun[runId].sort(function (a, b) { return a[0] - b[0]; });
          var run = runs[runId] || { name: runId, color: "#4b5565", dash: "solid" };
          var index = traceIndex(chart.div, runId);
          if (index < 0) {
            Plotly.addTraces(chart.div, {
              type: "scatter", mode: "lines+markers", name: run.name, uid: runId,
              x: points.map(function (p) { return p[0]; }), y: points.map(function (p) { return p[1]; }),
              line: { color: run.color, dash: run.dash, width: 2 }, marker: { size: 4 },
            });
          } else {
            var trace = chart.div.data[index];
            var last = trace.x.length ? trace.x[trace.x.length - 1] : -Infinity;
            if (points[0][0] < last) {
              // A point older than the last drawn one (missed during a reconnect): redraw this trace in order.
              var merged = trace.x.map(function (x, i) { return [x, trace.y[i]]; }).concat(points)
                .sort(function (a, b) { return a[0] - b[0]; });
              Plotly.restyle(chart.div, { x: [merged.map(function (p) { return p[0]; })],
                                          y: [merged.map(function (p) { return p[1]; })] }, [index]);
            } else {
              xs.push(points.map(function (p) { return p[0]; }));
              ys.push(points.map(function (p) { return p[1]; }));
              indices.push(index);
            }
          }
          added += points.length;
        });
        if (indices.length) Plotly.extendTraces(chart.div, { x: xs, y: ys }, indices);
        window.studioCompare.points += added;
      }).catch(function (err) { if (window.console) console.error("compare chart update failed", err); });
    }

    function flush() {
      flushTimer = null;
      if (typeof Plotly === "undefined") return;
      Object.keys(pending).forEach(plotPending);
    }

    function onMetric(runId, ev) {
      var key = runId + "|" + ev.name + "|" + ev.step;
      if (seen[key]) return;
      seen[key] = true;
      var byRun = pending[ev.name] = pending[ev.name] || Object.create(null);
      (byRun[runId] = byRun[runId] || []).push([ev.step, ev.value]);
      // Batch a burst (the replay on connect) into one redraw per chart.
      if (flushTimer === null) flushTimer = setTimeout(flush, 80);
    }

    var metric = data.metric || "";
    function tablesUrl() { return data.tables_url + (metric ? "&metric=" + encodeURIComponent(metric) : ""); }
    var tables = null;

    function onStatus(runId, ev) {
      var before = status[runId];
      if (!(ev.status in RANK) || (before in RANK && RANK[ev.status] < RANK[before])) return;
      status[runId] = ev.status;
      var badge = document.querySelector("[data-status-of='" + runId + "']");
      if (badge) {
        badge.textContent = ev.status;
        badge.className = "badge " + ev.status;
        if (ev.message) badge.title = ev.message;
      }
      // A run that finished has final metrics now: the tables and parallel coordinates change.
      if (RANK[ev.status] === 2 && before !== ev.status && tables) tables.schedule();
    }

    function watch(runId) {
      status[runId] = runs[runId] ? runs[runId].status : "pending";
      var path = "/ws/training-jobs/" + runId + "/?since=" + data.since;
      window.Studio.live(path, function (ev) {
        if (ev.type === "metric") onMetric(runId, ev);
        else if (ev.type === "status") onStatus(runId, ev);
      }, function (state) {
        if (state === "open") openRuns[runId] = true;
        else delete openRuns[runId];
        var open = Object.keys(openRuns).length;
        window.studioCompare.live = open;
        var el = document.getElementById("live-state");
        if (el) el.textContent = open ? "· live" : "";
      });
    }

    function drawTables() {
      var only = document.getElementById("only-differences");
      var table = document.getElementById("param-diff");
      if (only && table) {
        try { only.checked = sessionStorage.getItem("studio.experiments.onlyDifferences") === "1"; } catch (err) { /* off */ }
        table.classList.toggle("only-differences", only.checked);
      }
      var source = document.getElementById("compare-parallel");
      var div = document.getElementById("chart-parallel");
      if (source && div && typeof Plotly !== "undefined") {
        var figure = JSON.parse(source.textContent);
        if (figure) {
          Plotly.react(div, figure.data, figure.layout, CONFIG);
          window.studioCompare.parallel = figure.data[0].dimensions.length;
        }
      }
      window.studioCompare.tables += 1;
    }

    document.addEventListener("change", function (ev) {
      var target = ev.target;
      if (target && target.id === "only-differences") {
        var table = document.getElementById("param-diff");
        if (table) table.classList.toggle("only-differences", target.checked);
        try { sessionStorage.setItem("studio.experiments.onlyDifferences", target.checked ? "1" : "0"); } catch (err) { /* */ }
      } else if (target && target.id === "id_parallel_metric") {
        // Another metric: the server builds the figure again; only the tables part of the page is fetched.
        metric = target.value;
        tables = window.Studio.panel(tablesUrl(), "compare-tables");
        tables.schedule();
      }
    });

    // Studio.panel swaps #compare-tables without htmx events: watch for the new node.
    new MutationObserver(function (changes) {
      for (var i = 0; i < changes.length; i++) {
        for (var j = 0; j < changes[i].addedNodes.length; j++) {
          if (changes[i].addedNodes[j].id === "compare-tables") { drawTables(); return; }
        }
      }
    }).observe(root, { childList: true });

    function start() {
      if (typeof Plotly === "undefined" || !window.Studio) return setTimeout(start, 50);
      tables = window.Studio.panel(tablesUrl(), "compare-tables");
      (data.charts || []).forEach(function (chart) { addChart(chart.metric, chart.figure); });
      drawTables();
      (data.active || []).forEach(watch);
    }
    start();
  }

  var list = document.getElementById("experiments");
  if (list) runsTable(list);
  var compare = document.getElementById("compare");
  var source = document.getElementById("compare-data");
  if (compare && source) comparePage(compare, JSON.parse(source.textContent));
})();
