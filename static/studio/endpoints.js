/* Endpoint and batch transform pages.
 *
 * Lists: refetched (htmx) when the project stream reports a change of an endpoint or transform job.
 * Forms: the variants editor (add/remove rows) and the settings of the chosen endpoint type.
 * Endpoint detail: the endpoint's websocket sends its status and instance counts, then the stored
 * metric intervals of the last quarter of an hour, then live ones. Points are de-duplicated by
 * (variant, ts), so a reconnect draws nothing twice, and appended with Plotly.extendTraces under a
 * fixed uirevision, so the user's zoom and pan survive the stream. Scaling decisions go on top of
 * the log; status and instance changes refetch the panel (variants, instances). The test box posts
 * to the test-invocations API with the session and its CSRF token.
 * Transform detail: progress from the project stream (events of this job), and the panel polls
 * itself every 2 s while the job runs.
 */
(function () {
  "use strict";

  function whenStudio(fn) {
    if (!window.Studio) return setTimeout(function () { whenStudio(fn); }, 50);
    fn(window.Studio);
  }

  // --- copy buttons ---------------------------------------------------------------------------
  function copyText(text, button) {
    function done() {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
      return;
    }
    // Plain http on another host has no clipboard API: copy through a selected text area.
    var area = document.createElement("textarea");
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { document.execCommand("copy"); done(); } catch (err) { /* the text stays selectable */ }
    area.remove();
  }
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest ? ev.target.closest("[data-copy]") : null;
    if (!button) return;
    var source = document.getElementById(button.dataset.copy);
    if (source) copyText(source.textContent, button);
  });

  // --- lists ----------------------------------------------------------------------------------
  function watchList(id, object, verb) {
    var el = document.getElementById(id);
    if (!el || !el.dataset.projectWs) return;
    whenStudio(function (Studio) {
      Studio.live(el.dataset.projectWs, function (ev) {
        var relevant = ev.object === object || (ev.type === "activity" && verb.test(ev.verb || ""));
        var current = document.getElementById(id);
        if (relevant && current && window.htmx) window.htmx.trigger(current, "studio-refresh");
      });
    });
  }
  watchList("endpoints-live", "endpoint", /endpoint/);
  watchList("transform-live", "transform-job", /transform job/);

  // --- new and edit forms -----------------------------------------------------------------------
  function formType(form) {
    var checked = form.querySelector("[data-endpoint-type]:checked");
    return checked ? checked.value : (form.dataset.type || "realtime");
  }

  function applyType(form, previous) {
    var type = formType(form);
    Array.prototype.forEach.call(form.querySelectorAll("[data-for-type]"), function (section) {
      section.hidden = section.dataset.forType.split(" ").indexOf(type) < 0;
    });
    Array.prototype.forEach.call(form.querySelectorAll(".type-choice"), function (label) {
      var input = label.querySelector("input");
      label.classList.toggle("chosen", !!(input && input.checked));
    });
    // Serverless and asynchronous variants scale to zero; real-time ones keep at least one instance.
    if (previous && previous !== type) {
      var toZero = type !== "realtime";
      Array.prototype.forEach.call(form.querySelectorAll("[data-min-instances]"), function (input) {
        if (toZero && input.value === "1") input.value = "0";
        if (!toZero && (input.value === "0" || input.value === "")) input.value = "1";
      });
    }
    form.dataset.currentType = type;
  }

  function addVariant(form) {
    var body = form.querySelector("[data-variant-rows]");
    var template = form.querySelector("template[data-variant-template]");
    if (!body || !template) return;
    var indices = Array.prototype.map.call(body.querySelectorAll("[data-variant-row]"), function (row) {
      return parseInt(row.dataset.index, 10) || 0;
    });
    var next = indices.length ? Math.max.apply(null, indices) + 1 : 0;
    var html = template.innerHTML.replace(/__i__/g, String(next)).replace(/__n__/g, String(indices.length + 1));
    var holder = document.createElement("tbody");
    holder.innerHTML = html.trim();
    var row = holder.firstElementChild;
    if (formType(form) !== "realtime") {
      var min = row.querySelector("[data-min-instances]");
      if (min) min.value = "0";
    }
    body.appendChild(row);
    var select = row.querySelector("select");
    if (select) select.focus();
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-endpoint-form]"), function (form) {
    applyType(form, null);
    form.addEventListener("change", function (ev) {
      if (ev.target.matches("[data-endpoint-type]")) applyType(form, form.dataset.currentType);
      if (ev.target.matches("[data-autoscaling-toggle]")) {
        var fields = form.querySelector("[data-autoscaling-fields]");
        if (fields) fields.hidden = !ev.target.checked;
      }
    });
    form.addEventListener("click", function (ev) {
      if (ev.target.closest("[data-add-variant]")) {
        ev.preventDefault();
        addVariant(form);
      }
      var remove = ev.target.closest("[data-remove-variant]");
      if (remove) {
        ev.preventDefault();
        var rows = form.querySelectorAll("[data-variant-row]");
        if (rows.length > 1) remove.closest("[data-variant-row]").remove();
      }
    });
  });

  // --- transform detail -----------------------------------------------------------------------
  var transformRoot = document.getElementById("transform-job");
  if (transformRoot) {
    whenStudio(function (Studio) {
      Studio.live(transformRoot.dataset.projectWs, function (ev) {
        if (ev.object !== "transform-job" || ev.id !== transformRoot.dataset.job) return;
        if (ev.type === "progress") {
          var bar = document.getElementById("transform-progress");
          if (bar) bar.value = Math.round(1000 * (ev.progress || 0)) / 10;
          var text = document.getElementById("transform-progress-text");
          if (text) text.textContent = ev.records_done + (ev.records_total === null ? "" : "/" + ev.records_total);
          var parts = document.getElementById("transform-parts");
          if (parts && ev.parts_total) parts.textContent = "· " + ev.parts_done + "/" + ev.parts_total + " parts";
        } else if (ev.type === "status") {
          var badge = document.getElementById("transform-status");
          if (badge && badge.textContent !== ev.status) {
            badge.textContent = ev.status;
            badge.className = "badge " + ev.status;
            badge.title = ev.message || "";
            var panel = document.getElementById("transform-panel");
            // A finished job's panel no longer polls: fetch it once to show the output dataset.
            if (window.htmx) {
              window.htmx.ajax("GET", location.pathname + "panel/", { target: "#transform-panel", swap: "outerHTML" });
            } else if (panel) {
              location.reload();
            }
            if (["completed", "failed", "stopped"].indexOf(ev.status) >= 0) {
              var stop = document.getElementById("stop-form");
              if (stop) stop.remove();
            }
          }
        }
      });
    });
  }

  // --- endpoint detail ------------------------------------------------------------------------
  var root = document.getElementById("endpoint");
  var source = document.getElementById("endpoint-data");
  if (!root || !source) return;
  var data = JSON.parse(source.textContent);
  var status = data.status.status;
  var lastInstances = null;
  window.studioEndpointPoints = { invocations: 0, latency: 0, errors: 0, instances: 0, cold_starts: 0 };
  window.studioEndpointInvocations = 0; // requests in the plotted intervals
  window.studioEndpointStatus = status;

  // --- charts ---
  var CHARTS = {
    invocations: { div: "chart-invocations", title: "Invocations per second", y: "requests/s",
                   series: function (ev) { return [["", ev.rps]]; } },
    latency: { div: "chart-latency", title: "Latency (ms)", y: "ms",
               series: function (ev) { return [["p50", ev.p50_ms], ["p99", ev.p99_ms]]; } },
    errors: { div: "chart-errors", title: "Errors and throttled requests", y: "per interval",
              series: function (ev) { return [["errors", ev.errors], ["throttled", ev.throttled]]; } },
    instances: { div: "chart-instances", title: "Instances in service", y: "instances",
                 series: function (ev) { return [["", ev.instances]]; } },
    cold_starts: { div: "chart-cold-starts", title: "Cold starts", y: "per interval",
                   series: function (ev) { return [["", ev.cold_starts]]; } },
  };
  var CONFIG = { responsive: true, displaylogo: false };
  var seen = Object.create(null);
  var pending = [];
  var flushTimer = null;
  var state = Object.create(null); // chart key -> {ready: Promise, index: {trace: i}, count, last: {trace: x}}

  function pad(n, width) { var s = String(n); while (s.length < (width || 2)) s = "0" + s; return s; }
  function localTime(ts) {
    // Plotly reads date strings as they are: local wall-clock time, as the scaling log shows it.
    var d = new Date(ts * 1000);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + " " + pad(d.getHours()) + ":" +
      pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
  }

  function ensureChart(key) {
    if (state[key]) return state[key];
    var spec = CHARTS[key];
    var layout = {
      title: { text: spec.title, x: 0.01, xanchor: "left" }, uirevision: "keep", height: 280,
      margin: { l: 55, r: 15, t: 40, b: 40 }, xaxis: { type: "date", automargin: true },
      yaxis: { title: { text: spec.y }, automargin: true, rangemode: "tozero" }, showlegend: true,
      legend: { orientation: "h", x: 1, xanchor: "right", y: 1.02, yanchor: "bottom" },
    };
    var chart = { index: Object.create(null), count: 0, xs: Object.create(null), ys: Object.create(null),
                  div: document.getElementById(spec.div), padded: false, ours: false, userRange: false };
    chart.ready = Promise.resolve(Plotly.newPlot(chart.div, [], layout, CONFIG)).then(function () {
      chart.div.on("plotly_relayout", function (ev) {
        if (chart.ours) return;
        if ("xaxis.autorange" in ev) chart.userRange = false; // the user reset the view (double click)
        else if ("xaxis.range[0]" in ev || "xaxis.range" in ev) chart.userRange = true;
      });
    });
    state[key] = chart;
    return chart;
  }

  // A few seconds of data would get millisecond ticks: show at least a minute until the data spans one,
  // then let plotly fit it again. A range the user chose (zoom, pan) is left alone.
  var MIN_SPAN = 60;
  function fitRange(chart) {
    if (chart.userRange) return null;
    var lo = Infinity, hi = -Infinity;
    Object.keys(chart.xs).forEach(function (name) {
      var xs = chart.xs[name];
      if (xs.length) { lo = Math.min(lo, xs[0]); hi = Math.max(hi, xs[xs.length - 1]); }
    });
    var update = null;
    if (hi - lo < MIN_SPAN && isFinite(hi)) {
      update = { "xaxis.range": [localTime(hi - MIN_SPAN), localTime(hi + 5)] };
      chart.padded = true;
    } else if (chart.padded) {
      update = { "xaxis.autorange": true };
      chart.padded = false;
    }
    if (!update) return null;
    chart.ours = true;
    return Promise.resolve(Plotly.relayout(chart.div, update)).then(function () { chart.ours = false; });
  }

  function plotChart(key, points) {
    // points: [[trace name, x (ts), y], ...] in arrival order
    var chart = ensureChart(key);
    chart.ready = chart.ready.then(function () {
      var byTrace = Object.create(null);
      points.forEach(function (p) { (byTrace[p[0]] = byTrace[p[0]] || []).push(p); });
      var xs = [], ys = [], indices = [];
      Object.keys(byTrace).forEach(function (name) {
        var list = byTrace[name].sort(function (a, b) { return a[1] - b[1]; });
        if (!(name in chart.index)) {
          chart.xs[name] = list.map(function (p) { return p[1]; });
          chart.ys[name] = list.map(function (p) { return p[2]; });
          Plotly.addTraces(chart.div, { x: chart.xs[name].map(localTime), y: chart.ys[name].slice(), name: name,
                                        type: "scatter", mode: "lines+markers", connectgaps: false,
                                        marker: { size: 4 } });
          chart.index[name] = chart.count++;
        } else if (list[0][1] < chart.xs[name][chart.xs[name].length - 1]) {
          // Older than the last plotted point (missed during a reconnect): redraw the trace in order.
          list.forEach(function (p) { chart.xs[name].push(p[1]); chart.ys[name].push(p[2]); });
          var order = chart.xs[name].map(function (_, i) { return i; })
            .sort(function (a, b) { return chart.xs[name][a] - chart.xs[name][b]; });
          chart.xs[name] = order.map(function (i) { return chart.xs[name][i]; });
          chart.ys[name] = order.map(function (i) { return chart.ys[name][i]; });
          Plotly.restyle(chart.div, { x: [chart.xs[name].map(localTime)], y: [chart.ys[name].slice()] },
                         [chart.index[name]]);
        } else {
          list.forEach(function (p) { chart.xs[name].push(p[1]); chart.ys[name].push(p[2]); });
          xs.push(list.map(function (p) { return localTime(p[1]); }));
          ys.push(list.map(function (p) { return p[2]; }));
          indices.push(chart.index[name]);
        }
        window.studioEndpointPoints[key] += list.length;
      });
      if (indices.length) Plotly.extendTraces(chart.div, { x: xs, y: ys }, indices);
      return fitRange(chart);
    }).catch(function (err) { if (window.console) console.error("endpoint chart update failed", err); });
  }

  function flush() {
    flushTimer = null;
    if (typeof Plotly === "undefined" || !pending.length) return;
    var events = pending;
    pending = [];
    var empty = document.getElementById("charts-empty");
    if (empty) empty.hidden = true;
    var several = data.variants.length > 1;
    events.forEach(function (ev) { window.studioEndpointInvocations += ev.invocations || 0; });
    Object.keys(CHARTS).forEach(function (key) {
      var points = [];
      events.forEach(function (ev) {
        CHARTS[key].series(ev).forEach(function (s) {
          var label = s[0];
          // One variant: traces are named by the measure; several: by variant (and measure).
          var name = several || !label ? ev.variant + (label ? " " + label : "") : label;
          points.push([name, ev.ts, s[1] === undefined ? null : s[1]]);
        });
      });
      plotChart(key, points);
    });
  }

  function schedule() {
    // The history replay is a burst: one redraw for it instead of one per point.
    if (flushTimer === null) flushTimer = setTimeout(flush, 80);
  }

  // --- scaling log ---
  function scalingKnown(ev) {
    var rows = document.querySelectorAll("#scaling-body tr[data-scaling]");
    return Array.prototype.some.call(rows, function (row) {
      return row.dataset.variant === ev.variant && row.dataset.from === String(ev.from) &&
        row.dataset.to === String(ev.to) && Math.abs(parseFloat(row.dataset.ts) - ev.ts) < 5;
    });
  }

  function addScaling(ev) {
    if (scalingKnown(ev)) return;
    var body = document.getElementById("scaling-body");
    if (!body) return;
    var tr = document.createElement("tr");
    tr.dataset.scaling = "";
    tr.dataset.variant = ev.variant;
    tr.dataset.from = String(ev.from);
    tr.dataset.to = String(ev.to);
    tr.dataset.ts = String(ev.ts);
    var when = new Date(ev.ts * 1000);
    [[pad(when.getHours()) + ":" + pad(when.getMinutes()) + ":" + pad(when.getSeconds()), ""],
     [ev.variant, "mono"], [ev.from + " → " + ev.to, "num"], [ev.reason, ""]].forEach(function (c) {
      var td = document.createElement("td");
      td.textContent = c[0];
      if (c[1]) td.className = c[1];
      tr.appendChild(td);
    });
    tr.firstChild.title = when.toISOString();
    // Newest first; a replayed older decision goes below the newer ones.
    var before = Array.prototype.find.call(body.querySelectorAll("tr[data-scaling]"), function (row) {
      return parseFloat(row.dataset.ts) < ev.ts;
    });
    body.insertBefore(tr, before || null);
    var empty = document.getElementById("scaling-empty");
    if (empty) empty.hidden = true;
  }

  // --- panel (status, variants, instances) ---
  var panel = Studio.panel(root.dataset.panelUrl, "endpoint-panel");
  function schedulePanel() { panel.schedule(); }

  function setStatus(ev) {
    var badge = document.getElementById("endpoint-status");
    if (badge) {
      badge.textContent = ev.status;
      badge.className = "badge " + ev.status;
      badge.title = ev.message || "";
    }
    window.studioEndpointStatus = ev.status;
    if (ev.status !== status) {
      status = ev.status;
      schedulePanel();
    }
  }

  function onEvent(ev) {
    if (ev.type === "metric") {
      var key = ev.variant + "|" + ev.ts;
      if (seen[key]) return;
      seen[key] = true;
      pending.push(ev);
      schedule();
    } else if (ev.type === "status") {
      setStatus(ev);
    } else if (ev.type === "instances") {
      var counts = JSON.stringify(ev.variants);
      if (lastInstances !== null && counts !== lastInstances) schedulePanel();
      lastInstances = counts;
    } else if (ev.type === "scaling") {
      addScaling(ev);
    }
  }

  function onState(s) {
    var el = document.getElementById("live-state");
    if (el) el.textContent = s === "open" ? "· live" : "· reconnecting…";
  }

  // --- test invocation ---
  var testForm = document.getElementById("test-invoke-form");
  if (testForm) {
    var bodyInput = document.getElementById("id_test_body");
    var typeInput = document.getElementById("id_test_content_type");
    var examples = { "application/json": data.examples.json, "text/csv": data.examples.csv };
    var shownType = typeInput.value;
    typeInput.addEventListener("change", function () {
      // Swap the example only while the user has not edited it.
      if (bodyInput.value.trim() === (examples[shownType] || "").trim() && examples[typeInput.value]) {
        bodyInput.value = examples[typeInput.value];
      }
      shownType = typeInput.value;
    });
    testForm.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var button = testForm.querySelector("button[type=submit]");
      var token = testForm.querySelector("input[name=csrfmiddlewaretoken]");
      var result = document.getElementById("test-result");
      var badge = document.getElementById("test-status");
      var elapsed = document.getElementById("test-elapsed");
      var out = document.getElementById("test-response");
      button.disabled = true;
      badge.className = "badge running";
      badge.textContent = "sending";
      elapsed.textContent = "";
      out.textContent = "";
      result.hidden = false;
      fetch(testForm.dataset.testUrl, {
        method: "POST", credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token ? token.value : "" },
        body: JSON.stringify({ body: bodyInput.value, content_type: typeInput.value,
                               target_variant: document.getElementById("id_test_variant").value }),
      }).then(function (r) {
        return r.json().catch(function () { return { detail: "HTTP " + r.status }; })
          .then(function (answer) { return { http: r.status, answer: answer }; });
      }).then(function (res) {
        var ok = res.http === 200;
        var code = ok ? res.answer.status : res.http;
        badge.className = "badge " + (code >= 200 && code < 300 ? "ok" : "failed");
        badge.textContent = String(code);
        elapsed.textContent = ok ? res.answer.elapsed_ms + " ms" : "";
        var shown = ok ? res.answer.response : res.answer;
        out.textContent = typeof shown === "string" ? shown : JSON.stringify(shown, null, 2);
      }).catch(function (err) {
        badge.className = "badge failed";
        badge.textContent = "error";
        out.textContent = String(err);
      }).then(function () { button.disabled = false; });
    });
  }

  whenStudio(function (Studio) { Studio.live(root.dataset.ws, onEvent, onState); });
})();
