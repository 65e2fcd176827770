/* Tuning pages.
 *
 * New: a range row is highlighted while its "tune" box is ticked (the static value then does not apply).
 * Detail: the trials table (sortable) and three kinds of plotly charts drawn from the data embedded in
 * the page, then kept current by the job's websocket. The server sends the status and then every trial
 * on each connect; trials are kept in a map by id, so a replay only overwrites what is there. Charts
 * are redrawn with Plotly.react and a fixed uirevision, so the user's zoom and pan survive updates.
 */
(function () {
  "use strict";

  // --- new: tune checkboxes -------------------------------------------------------------------
  function markTuned(box) {
    var row = box.closest("tr.range-row");
    if (row) row.classList.toggle("tuned", box.checked);
  }
  document.addEventListener("change", function (ev) {
    if (ev.target && ev.target.matches && ev.target.matches("[data-tune]")) markTuned(ev.target);
  });

  // --- list: refresh on tuning-job changes of the project stream --------------------------------
  // Every advance of a tuning job (a trial started or finished) publishes its status there, so
  // progress and best values stay current; other objects' events do not cause a refetch.
  var jobList = document.getElementById("tuning-live");
  function watchList() {
    if (!window.Studio) return setTimeout(watchList, 50);
    window.Studio.live(jobList.dataset.projectWs, function (ev) {
      var relevant = ev.object === "tuning-job" || (ev.type === "activity" && /tuning job/.test(ev.verb || ""));
      var el = document.getElementById("tuning-live");
      if (relevant && el && window.htmx) window.htmx.trigger(el, "studio-refresh");
    });
  }
  if (jobList && jobList.dataset.projectWs) watchList();

  // --- detail ---------------------------------------------------------------------------------
  var root = document.getElementById("tuning-job");
  var source = document.getElementById("tuning-data");
  if (!root || !source) return;

  var data = JSON.parse(source.textContent);
  var RANK = { pending: 0, running: 1, completed: 2, failed: 2, stopped: 2 };
  var STATUS_ORDER = { completed: 0, stopped: 1, running: 2, pending: 3, failed: 4 };
  var COLORS = { completed: "#137a3a", stopped: "#8a96a8", running: "#1f4fbf", pending: "#8a5a00", failed: "#b42318" };
  var ranges = data.ranges || {};
  var tuned = Object.keys(ranges);
  var goal = data.objective.goal;
  var metricName = data.objective.metric;
  var hyperband = data.strategy === "hyperband";
  var trainingUrl = root.dataset.trainingUrl;
  var ZERO_ID = "00000000-0000-0000-0000-000000000000";

  var trials = Object.create(null);
  (data.trials || []).forEach(function (t) { trials[t.id] = t; });
  var status = data.status.status;
  var bestId = data.status.best ? data.status.best.id : null;
  var lastCounts = JSON.stringify(data.status.counts);
  var sortKey = "number", sortDir = 1;
  var redrawTimer = null;
  window.studioTuningTrials = 0;
  window.studioTuningCharts = { objective: 0, parallel: 0, params: 0 };

  // --- formatting (the same text the server renders) ---
  function fmt(v) {
    if (v === null || v === undefined || v === "") return "—";
    if (typeof v !== "number") return String(v);
    if (!isFinite(v)) return String(v);
    if (v === 0) return "0";
    var exp = Math.floor(Math.log10(Math.abs(Number(v.toPrecision(4)))));
    if (exp < -4 || exp >= 4) {
      var parts = v.toExponential(3).split("e");
      var mantissa = parts[0].replace(/\.?0+$/, "");
      var e = parseInt(parts[1], 10);
      return mantissa + "e" + (e < 0 ? "-" : "+") + (Math.abs(e) < 10 ? "0" : "") + Math.abs(e);
    }
    return String(Number(v.toPrecision(4)));
  }

  function paramText(name, v) {
    if (v === null || v === undefined) return "—";
    if (typeof v === "boolean") return v ? "true" : "false";
    if (ranges[name] && ranges[name].type === "integer") return String(v);
    return fmt(v);
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "—";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    var total = Math.round(seconds), minutes = Math.floor(total / 60), secs = total % 60;
    if (minutes < 60) return minutes + " min " + (secs < 10 ? "0" : "") + secs + " s";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    return hours + " h " + (minutes < 10 ? "0" : "") + minutes + " min";
  }

  // --- trials table ---
  function sortValue(t, key) {
    if (key === "number") return t.number;
    if (key === "name") return t.name;
    if (key === "status") return STATUS_ORDER[t.status];
    if (key === "objective") return t.objective_value;
    if (key === "duration") return t.duration_seconds;
    if (key === "bracket" || key === "rung" || key === "budget") return t[key];
    if (key.indexOf("p:") === 0) {
      var v = (t.parameters || {})[key.slice(2)];
      return typeof v === "boolean" ? String(v) : v;
    }
    return null;
  }

  function sortedTrials() {
    var list = Object.keys(trials).map(function (id) { return trials[id]; });
    list.sort(function (a, b) {
      var x = sortValue(a, sortKey), y = sortValue(b, sortKey);
      var xNull = x === null || x === undefined, yNull = y === null || y === undefined;
      if (xNull || yNull) return xNull === yNull ? a.number - b.number : (xNull ? 1 : -1); // empty cells last
      if (x < y) return -sortDir;
      if (x > y) return sortDir;
      return a.number - b.number;
    });
    return list;
  }

  function cell(row, text, className) {
    var td = document.createElement("td");
    if (className) td.className = className;
    td.textContent = text;
    row.appendChild(td);
    return td;
  }

  function renderTable() {
    var body = document.getElementById("trials-body");
    if (!body) return;
    var fragment = document.createDocumentFragment();
    sortedTrials().forEach(function (t) {
      var tr = document.createElement("tr");
      tr.dataset.trialId = t.id;
      if (t.id === bestId) tr.className = "best";
      cell(tr, String(t.number), "num");
      var link = document.createElement("a");
      link.href = trainingUrl.replace(ZERO_ID, t.id);
      link.textContent = t.name;
      cell(tr, "").appendChild(link);
      var statusCell = cell(tr, "");
      var badge = document.createElement("span");
      badge.className = "badge " + t.status;
      badge.textContent = t.status;
      if (t.status_message) badge.title = t.status_message;
      statusCell.appendChild(badge);
      if (t.early_stopped) {
        var marker = document.createElement("span");
        marker.className = "badge";
        marker.textContent = "early-stopped";
        if (t.status_message) marker.title = t.status_message;
        statusCell.appendChild(document.createTextNode(" "));
        statusCell.appendChild(marker);
      }
      cell(tr, fmt(t.objective_value), "num");
      tuned.forEach(function (name) { cell(tr, paramText(name, (t.parameters || {})[name]), "num mono"); });
      if (hyperband) {
        ["bracket", "rung", "budget"].forEach(function (k) { cell(tr, t[k] === null || t[k] === undefined ? "—" : String(t[k]), "num"); });
      }
      cell(tr, duration(t.duration_seconds), "num");
      fragment.appendChild(tr);
    });
    body.replaceChildren(fragment);
    var count = Object.keys(trials).length;
    var empty = document.getElementById("trials-empty");
    if (empty) empty.hidden = count > 0;
    window.studioTuningTrials = count;
    var heads = document.querySelectorAll("#trials-table th[data-sort]");
    Array.prototype.forEach.call(heads, function (th) {
      th.setAttribute("aria-sort", th.dataset.sort === sortKey ? (sortDir > 0 ? "ascending" : "descending") : "none");
    });
  }

  var thead = document.querySelector("#trials-table thead");
  if (thead) {
    thead.addEventListener("click", function (ev) {
      var th = ev.target.closest("th[data-sort]");
      if (!th) return;
      if (th.dataset.sort === sortKey) sortDir = -sortDir;
      else { sortKey = th.dataset.sort; sortDir = 1; }
      renderTable();
    });
  }

  // --- charts ---
  var CONFIG = { responsive: true, displaylogo: false };

  function scored() {
    return Object.keys(trials).map(function (id) { return trials[id]; })
      .filter(function (t) { return typeof t.objective_value === "number" && isFinite(t.objective_value); })
      .sort(function (a, b) { return a.number - b.number; });
  }

  function better(a, b) { return goal === "maximize" ? a > b : a < b; }

  function hoverText(t) {
    var parts = [t.name];
    tuned.forEach(function (name) { parts.push(name + " = " + paramText(name, (t.parameters || {})[name])); });
    if (t.early_stopped) parts.push("early-stopped");
    return parts.join("<br>");
  }

  function byStatus(list) {
    var groups = Object.create(null);
    list.forEach(function (t) { (groups[t.status] = groups[t.status] || []).push(t); });
    return Object.keys(groups).sort(function (a, b) { return STATUS_ORDER[a] - STATUS_ORDER[b]; })
      .map(function (s) { return { status: s, trials: groups[s] }; });
  }

  function objectiveChart(list) {
    var traces = byStatus(list).map(function (g) {
      return {
        type: "scatter", mode: "markers", name: g.status,
        x: g.trials.map(function (t) { return t.number; }), y: g.trials.map(function (t) { return t.objective_value; }),
        text: g.trials.map(hoverText), hovertemplate: "trial %{x}: %{y:.4g}<br>%{text}<extra></extra>",
        marker: { size: 9, color: COLORS[g.status] || "#4b5565",
                  symbol: g.trials.map(function (t) { return t.early_stopped ? "x" : "circle"; }) },
      };
    });
    // Best so far counts completed trials only, as the tuning job's own best does.
    var xs = [], ys = [], best = null;
    list.forEach(function (t) {
      if (t.status !== "completed") return;
      if (best === null || better(t.objective_value, best)) best = t.objective_value;
      xs.push(t.number);
      ys.push(best);
    });
    if (xs.length) {
      var last = list[list.length - 1].number;
      if (last > xs[xs.length - 1]) { xs.push(last); ys.push(best); }
      traces.push({ type: "scatter", mode: "lines", name: "best so far", x: xs, y: ys,
                    line: { shape: "hv", color: "#2f5bea", width: 2 }, hoverinfo: "skip" });
    }
    Plotly.react("chart-objective", traces, {
      title: { text: metricName + " per trial (" + goal + ")", x: 0.01, xanchor: "left" },
      uirevision: "keep", height: 340, margin: { l: 60, r: 15, t: 40, b: 45 },
      xaxis: { title: { text: "trial" }, dtick: list.length <= 20 ? 1 : undefined, automargin: true },
      yaxis: { automargin: true, exponentformat: "e" },
      legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom" },
    }, CONFIG);
    window.studioTuningCharts.objective = list.length;
  }

  function logTicks(lo, hi) {
    var vals = [], text = [];
    for (var k = Math.floor(lo); k <= Math.ceil(hi); k++) {
      if (k >= lo - 1e-9 && k <= hi + 1e-9) { vals.push(k); text.push(fmt(Math.pow(10, k))); }
    }
    return { vals: vals, text: text };
  }

  function dimension(name, list) {
    var spec = ranges[name];
    var raw = list.map(function (t) { return (t.parameters || {})[name]; });
    if (spec.type === "categorical") {
      var labels = spec.values.map(function (v) { return paramText(name, v); });
      return {
        label: name, tickvals: labels.map(function (_, i) { return i; }), ticktext: labels,
        range: [0, Math.max(1, labels.length - 1)],
        values: raw.map(function (v) { return labels.indexOf(paramText(name, v)); }),
      };
    }
    if (spec.scale === "log") {
      var lo = Math.log10(spec.min), hi = Math.log10(spec.max), ticks = logTicks(lo, hi);
      var dim = { label: name + " (log10)", range: [lo, hi], values: raw.map(function (v) { return Math.log10(v); }) };
      if (ticks.vals.length >= 2) { dim.tickvals = ticks.vals; dim.ticktext = ticks.text; }
      return dim;
    }
    return { label: name, range: [spec.min, spec.max], values: raw };
  }

  function parallelChart(list) {
    var dims = tuned.map(function (name) { return dimension(name, list); });
    var values = list.map(function (t) { return t.objective_value; });
    dims.push({ label: metricName, values: values });
    Plotly.react("chart-parallel", [{
      type: "parcoords", dimensions: dims,
      // Coloured by the objective (the last axis shows its values); the better end is bright.
      line: { color: values, colorscale: "Viridis", reversescale: goal === "minimize", showscale: false },
    }], {
      // Axis labels sit above the axes, in the top margin: the title goes higher still.
      title: { text: "Parallel coordinates", x: 0.01, xanchor: "left", y: 0.98, yanchor: "top" },
      uirevision: "keep", height: 360, margin: { l: 70, r: 50, t: 95, b: 30 },
    }, CONFIG);
    window.studioTuningCharts.parallel = list.length;
  }

  function paramCharts(list) {
    var box = document.getElementById("chart-params");
    var drawn = 0;
    tuned.forEach(function (name) {
      var spec = ranges[name];
      var id = "chart-param-" + name;
      var div = document.getElementById(id);
      if (!div) {
        div = document.createElement("div");
        div.id = id;
        div.className = "chart";
        div.setAttribute("data-testid", "chart-param");
        div.dataset.param = name;
        box.appendChild(div);
      }
      var traces = byStatus(list).map(function (g) {
        return {
          type: "scatter", mode: "markers", name: g.status, showlegend: false,
          x: g.trials.map(function (t) {
            var v = (t.parameters || {})[name];
            return spec.type === "categorical" ? paramText(name, v) : v;
          }),
          y: g.trials.map(function (t) { return t.objective_value; }),
          text: g.trials.map(hoverText), hovertemplate: "%{x}: %{y:.4g}<br>%{text}<extra></extra>",
          marker: { size: 8, color: COLORS[g.status] || "#4b5565" },
        };
      });
      var xaxis = { title: { text: name }, automargin: true };
      if (spec.type === "categorical") {
        xaxis.type = "category";
        xaxis.categoryorder = "array";
        xaxis.categoryarray = spec.values.map(function (v) { return paramText(name, v); });
      } else if (spec.scale === "log") {
        xaxis.type = "log";
      }
      Plotly.react(div, traces, {
        title: { text: name + (spec.scale === "log" ? " (log)" : ""), x: 0.01, xanchor: "left" },
        uirevision: "keep", height: 300, margin: { l: 60, r: 15, t: 40, b: 45 },
        xaxis: xaxis, yaxis: { title: { text: metricName }, automargin: true, exponentformat: "e" },
      }, CONFIG);
      drawn += 1;
    });
    window.studioTuningCharts.params = list.length ? drawn : 0;
  }

  function renderCharts() {
    if (typeof Plotly === "undefined") return;
    var list = scored();
    var empty = document.getElementById("charts-empty");
    if (empty) empty.hidden = list.length > 0;
    if (!list.length) return;
    try {
      objectiveChart(list);
      if (tuned.length) {
        parallelChart(list);
        paramCharts(list);
      }
    } catch (err) {
      if (window.console) console.error("tuning chart update failed", err);
    }
  }

  function redraw() {
    redrawTimer = null;
    renderTable();
    renderCharts();
  }

  function schedule() {
    // A connect replays every trial: one redraw for the burst instead of one per trial.
    if (redrawTimer === null) redrawTimer = setTimeout(redraw, 80);
  }

  // --- status, counts and the panel ---
  var panel = Studio.panel(root.dataset.panelUrl, "tuning-panel");
  function schedulePanel() { panel.schedule(); }

  function setCounts(counts) {
    if (!counts) return;
    Object.keys(counts).forEach(function (k) {
      var el = document.querySelector("#tuning-panel [data-count=" + k + "]");
      if (el) el.textContent = counts[k];
    });
    var finished = (counts.completed || 0) + (counts.failed || 0) + (counts.stopped || 0);
    var bar = document.getElementById("tuning-progress");
    if (bar) bar.value = finished;
    var text = document.getElementById("progress-text");
    if (text) text.textContent = finished + "/" + (data.planned || data.max_jobs);
  }

  function onStatus(ev) {
    var changed = false;
    if (ev.status in RANK && RANK[ev.status] >= RANK[status] && ev.status !== status) {
      // A late "running" must not undo "completed": status only moves forward.
      status = ev.status;
      changed = true;
      var badge = document.getElementById("tuning-status");
      if (badge) {
        badge.textContent = status;
        badge.className = "badge " + status;
        badge.title = ev.message || "";
      }
      if (RANK[status] === 2) {
        var stop = document.getElementById("stop-form");
        if (stop) stop.remove();
      }
    }
    var nextBest = ev.best ? ev.best.id : null;
    if (nextBest !== bestId) {
      bestId = nextBest;
      changed = true;
      schedule();
    }
    setCounts(ev.counts);
    var counts = JSON.stringify(ev.counts);
    if (counts !== lastCounts) { lastCounts = counts; changed = true; }
    if (changed) schedulePanel();
  }

  function onEvent(ev) {
    if (ev.type === "trial") {
      trials[ev.id] = ev;
      schedule();
    } else if (ev.type === "status") {
      onStatus(ev);
    }
  }

  function onState(state) {
    var el = document.getElementById("live-state");
    if (el) el.textContent = state === "open" ? "· live" : (RANK[status] === 2 ? "" : "· reconnecting…");
  }

  redraw();
  // Plotly loads deferred before this script, but a page without it still gets its table.
  function start() {
    if (!window.Studio) return setTimeout(start, 50);
    window.Studio.live(root.dataset.ws, onEvent, onState);
  }
  start();
})();
