/* Pipeline pages.
 *
 * Builder: the definition lives in one JS object. The palette appends steps, each step's form is
 * generated from its type's declared arguments, the parameters editor and the JSON tab edit the same
 * object, and every change re-renders the forms from it and asks the server for the DAG picture.
 * Saving posts the JSON; the server validates and names what is wrong, which is shown next to the step.
 *
 * Execution: the DAG drawn by the server gets its node colours, durations and links from the
 * execution's websocket (history first, then live changes); the steps table and banner are refreshed
 * from the server when an event says something changed.
 */
(function () {
  "use strict";

  var OBJECT_KINDS = ["dataset", "model", "model_version", "endpoint"];
  var FINAL = { completed: true, cached: true, failed: true, skipped: true, stopped: true };
  // What the engine assumes when a step says nothing; the options stay folded while a step keeps them.
  var RETRY_DEFAULTS = { max_attempts: 1, backoff_seconds: 5, backoff_rate: 2 };
  var CACHE_DEFAULTS = { enabled: true, expire_after_seconds: 30 * 24 * 3600 };
  // A processing step's arguments per operation: the form shows the chosen operation's only.
  var OPERATION_ARGUMENTS = {
    split: ["fractions", "seed", "stratify"], normalize: ["columns", "method"],
    impute: ["columns", "strategy", "value"], one_hot: ["columns", "drop_original"],
    filter_rows: ["column", "op", "value"], select_columns: ["columns", "drop"], join: ["right", "on", "how"],
  };
  var NAME_HINT = { processing: "process", training: "train", tuning: "tune", condition: "check", register: "register",
                    deploy: "deploy", transform: "score", fail: "fail" };

  function whenStudio(fn) {
    if (window.Studio) fn(); else setTimeout(function () { whenStudio(fn); }, 50);
  }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") node.textContent = value;
      else if (key === "className") node.className = value;
      else if (key.indexOf("on") === 0) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    });
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || seconds === "") return "—";
    if (seconds < 60) return seconds.toFixed(1) + " s";
    var total = Math.round(seconds), minutes = Math.floor(total / 60), secs = total % 60;
    if (minutes < 60) return minutes + " min " + (secs < 10 ? "0" : "") + secs + " s";
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    return hours + " h " + (minutes < 10 ? "0" : "") + minutes + " min";
  }

  // --- dialogs (the Run form) -------------------------------------------------------------------
  document.addEventListener("click", function (ev) {
    var opener = ev.target.closest && ev.target.closest("[data-open-dialog]");
    if (opener) {
      // Without the dialog (an old browser) the link opens the run form as a page of its own.
      var dialog = document.getElementById(opener.dataset.openDialog);
      if (!dialog || !dialog.showModal) return;
      ev.preventDefault();
      dialog.showModal();
      var first = dialog && dialog.querySelector("input:not([type=hidden]), button[type=submit]");
      if (first) first.focus();
      return;
    }
    var closer = ev.target.closest && ev.target.closest("[data-close-dialog]");
    if (closer) closer.closest("dialog").close();
  });

  // --- lists: refresh when an execution of the project changes ------------------------------------
  ["pipelines-live", "executions-live"].forEach(function (id) {
    var region = document.getElementById(id);
    if (!region || !region.dataset.projectWs) return;
    whenStudio(function () {
      window.Studio.live(region.dataset.projectWs, function (ev) {
        var relevant = /^pipeline/.test(ev.object || "") || (ev.type === "activity" && /pipeline/.test(ev.verb || ""));
        var current = document.getElementById(id);
        if (relevant && current && window.htmx) window.htmx.trigger(current, "studio-refresh");
      });
    });
  });

  // =============================================================================================
  // Builder
  // =============================================================================================
  var builderSource = document.getElementById("builder-data");
  if (builderSource) builder(JSON.parse(builderSource.textContent));

  function builder(data) {
    var form = document.getElementById("builder");
    var textarea = document.getElementById("id_definition");
    var lastValid = document.getElementById("id_last_valid_definition");
    var jsonStatus = document.getElementById("json-status");
    var stepEditor = document.getElementById("step-editor");
    var paramEditor = document.getElementById("param-editor");
    var dagBox = document.getElementById("dag");
    var csrf = form.querySelector("[name=csrfmiddlewaretoken]").value;
    var palette = {};
    data.palette.forEach(function (entry) { palette[entry.type] = entry; });
    var errors = data.errors || { steps: {}, parameters: [], general: [] };
    var def = normalise(data.definition);
    var dagTimer = null;
    form.classList.add("scripted");
    window.studioBuilder = { definition: function () { return def; }, dagUpdates: 0 };

    function normalise(value) {
      var copy = JSON.parse(JSON.stringify(value || {}));
      if (!copy || typeof copy !== "object" || Array.isArray(copy)) copy = {};
      if (!copy.parameters || typeof copy.parameters !== "object" || Array.isArray(copy.parameters)) copy.parameters = {};
      if (!Array.isArray(copy.steps)) copy.steps = [];
      copy.steps.forEach(function (step) {
        if (!step.arguments || typeof step.arguments !== "object") step.arguments = {};
        if (!Array.isArray(step.depends_on)) step.depends_on = [];
      });
      return copy;
    }

    function serialized() { return JSON.stringify(def, null, 2); }

    // Every edit of the forms goes through here: the JSON tab, the DAG and the "unsaved" note follow.
    function changed(rerender) {
      if (document.activeElement !== textarea) textarea.value = serialized();
      lastValid.value = JSON.stringify(def);
      document.getElementById("dirty-note").hidden = false;
      var runNote = document.getElementById("run-dirty-note");
      if (runNote) runNote.hidden = false;
      if (rerender) render();
      scheduleDag();
    }

    function scheduleDag() {
      if (dagTimer) clearTimeout(dagTimer);
      dagTimer = setTimeout(refreshDag, 250);
    }

    function refreshDag() {
      dagTimer = null;
      var body = new FormData();
      body.append("definition", JSON.stringify(def));
      fetch(data.dag_url, { method: "POST", body: body, credentials: "same-origin", headers: { "X-CSRFToken": csrf } })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) {
          if (html === null) return;
          dagBox.innerHTML = html;
          window.studioBuilder.dagUpdates += 1;
        })
        .catch(function () { /* the next change redraws it */ });
    }

    // Clicking a node in the graph brings its form into view.
    dagBox.addEventListener("click", function (ev) {
      var node = ev.target.closest && ev.target.closest("g.node");
      if (!node) return;
      var card = stepEditor.querySelector('[data-step-card="' + CSS.escape(node.dataset.step) + '"]');
      if (!card) return;
      showTab("steps");
      card.scrollIntoView({ behavior: "smooth", block: "center" });
      card.classList.add("flash");
      setTimeout(function () { card.classList.remove("flash"); }, 900);
    });

    // --- tabs and the JSON editor ---
    function showTab(name) {
      form.querySelectorAll(".tab").forEach(function (tab) { tab.classList.toggle("active", tab.dataset.tab === name); });
      form.querySelectorAll(".tab-panel").forEach(function (panel) {
        panel.classList.toggle("hidden", panel.dataset.panel !== name);
      });
    }
    form.querySelectorAll(".tab").forEach(function (tab) {
      tab.addEventListener("click", function () { showTab(tab.dataset.tab); });
    });
    if (data.json_active) showTab("json");

    textarea.addEventListener("input", function () {
      var parsed;
      try {
        parsed = JSON.parse(textarea.value);
      } catch (err) {
        jsonStatus.textContent = "Not valid JSON yet: " + err.message + ". The step forms keep the last definition that parsed.";
        document.getElementById("dirty-note").hidden = false;
        return;
      }
      jsonStatus.textContent = "";
      def = normalise(parsed);
      changed(true);
    });

    form.addEventListener("submit", function () {
      // The JSON tab's text is posted as typed (the server names a syntax error); the forms' copy goes along.
      lastValid.value = JSON.stringify(def);
      var jsonShown = !form.querySelector('[data-panel="json"]').classList.contains("hidden");
      if (!jsonShown) textarea.value = serialized();
    });

    // --- palette ---
    var paletteBox = document.getElementById("palette-items");
    paletteBox.innerHTML = "";
    data.palette.forEach(function (entry) {
      paletteBox.appendChild(el("button", {
        type: "button", className: "palette-item", "data-add-step": entry.type, title: entry.description || "",
        onclick: function () { addStep(entry.type); },
      }, [el("b", { text: "+ " + entry.title }), el("span", { text: entry.type })]));
    });

    function uniqueStepName(base) {
      var names = def.steps.map(function (s) { return s.name; });
      if (names.indexOf(base) < 0) return base;
      for (var n = 2; ; n++) if (names.indexOf(base + "-" + n) < 0) return base + "-" + n;
    }

    function addStep(type) {
      var entry = palette[type];
      var step = { name: uniqueStepName(NAME_HINT[type] || type), type: type, depends_on: [], arguments: {} };
      (entry.arguments || []).forEach(function (arg) {
        if (arg.kind === "steps") step.arguments[arg.name] = [];
        else if (arg.required && arg.choices && arg.choices.length) step.arguments[arg.name] = arg.choices[0];
      });
      def.steps.push(step);
      changed(true);
      showTab("steps");
      var card = stepEditor.querySelector('[data-step-card="' + CSS.escape(step.name) + '"]');
      if (card) {
        card.scrollIntoView({ behavior: "smooth", block: "center" });
        card.querySelector("input.step-name").focus();
      }
    }

    // --- refs: what a step or argument may point at ---
    function isRef(value) {
      return value && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 1 &&
        typeof value.ref === "string";
    }

    function parameterKind(value) {
      if (typeof value === "boolean") return "boolean";
      if (typeof value === "number") return "number";
      return "string";
    }

    function fits(argKind, valueKind) {
      if (argKind === "any" || valueKind === "any") return true;
      if (argKind === valueKind) return true;
      return OBJECT_KINDS.indexOf(argKind) >= 0 && valueKind === "string";
    }

    function stepMetrics(step) {
      var algorithm = step.arguments.algorithm;
      if (isRef(algorithm) && algorithm.ref.indexOf("parameters.") === 0) {
        algorithm = def.parameters[algorithm.ref.slice("parameters.".length)];
      }
      return (typeof algorithm === "string" && data.metrics[algorithm]) || [];
    }

    function refOptions(step, arg) {
      var groups = [];
      var params = Object.keys(def.parameters).filter(function (name) {
        return fits(arg.kind, parameterKind(def.parameters[name]));
      }).map(function (name) { return { value: "ref:parameters." + name, label: "parameters." + name }; });
      if (params.length) groups.push({ label: "Parameters", options: params });
      var outputs = [];
      var index = def.steps.indexOf(step);
      def.steps.forEach(function (other, i) {
        if (other === step || i > index) return; // earlier steps only: a later one would make a cycle
        var entry = palette[other.type];
        (entry ? entry.outputs : []).forEach(function (output) {
          if (output.name === "metrics") {
            if (arg.kind !== "number" && arg.kind !== "any") return;
            stepMetrics(other).forEach(function (metric) {
              var path = "steps." + other.name + ".metrics." + metric;
              outputs.push({ value: "ref:" + path, label: path });
            });
            return;
          }
          if (!fits(arg.kind, output.kind) && !(output.kind === "any")) return;
          var path = "steps." + other.name + "." + output.name;
          outputs.push({ value: "ref:" + path, label: path + " (" + output.kind + ")" });
        });
      });
      if (outputs.length) groups.push({ label: "Earlier steps' outputs", options: outputs });
      return groups;
    }

    // --- step forms ---
    function fieldErrors(stepName, field) {
      return ((errors.steps || {})[stepName] || []).filter(function (e) {
        return e.field === field || e.field.indexOf(field + ".") === 0;
      });
    }

    function errorList(list) {
      if (!list.length) return null;
      return el("ul", { className: "field-errors" }, list.map(function (e) {
        return el("li", { "data-testid": "field-error" }, [e.message]);
      }));
    }

    function literalInput(arg, value, onValue) {
      if (arg.choices && arg.choices.length && arg.kind === "string") {
        var select = el("select", { className: "literal", onchange: function () { onValue(select.value); } },
          arg.choices.map(function (choice) { return el("option", { value: choice, text: choice }); }));
        select.value = typeof value === "string" ? value : arg.choices[0];
        return select;
      }
      if (arg.kind === "number") {
        var number = el("input", { type: "number", step: "any", className: "literal",
          value: typeof value === "number" ? String(value) : "",
          onchange: function () { onValue(number.value === "" ? undefined : Number(number.value)); } });
        return number;
      }
      if (arg.kind === "boolean") {
        var bool = el("select", { className: "literal", onchange: function () { onValue(bool.value === "true"); } },
          [el("option", { value: "true", text: "true" }), el("option", { value: "false", text: "false" })]);
        bool.value = value === true ? "true" : "false";
        return bool;
      }
      if (arg.kind === "string") {
        var text = el("input", { type: "text", className: "literal", value: typeof value === "string" ? value : "",
          onchange: function () { onValue(text.value); } });
        return text;
      }
      return jsonInput(value, onValue);
    }

    function jsonInput(value, onValue) {
      var area = el("textarea", { className: "literal", spellcheck: "false", rows: "2" });
      area.value = value === undefined ? "" : JSON.stringify(value);
      area.addEventListener("change", function () {
        if (!area.value.trim()) return onValue(undefined);
        try {
          onValue(JSON.parse(area.value));
          area.setCustomValidity("");
        } catch (err) {
          area.setCustomValidity("Not valid JSON: " + err.message);
          area.reportValidity();
        }
      });
      return area;
    }

    function argField(step, arg) {
      var value = step.arguments[arg.name];
      var set = function (next, rerender) {
        if (next === undefined) delete step.arguments[arg.name]; else step.arguments[arg.name] = next;
        changed(rerender);
      };
      var label = el("label", {}, [el("span", { className: "mono", text: arg.name }),
        arg.required ? el("span", { className: "req", text: " *" }) : null,
        el("span", { className: "muted", text: " " + arg.kind })]);
      var body;
      if (arg.kind === "steps") {
        var chosen = Array.isArray(value) ? value : [];
        body = el("div", { className: "checks" }, def.steps.filter(function (s) { return s !== step; }).map(function (other) {
          var box = el("input", { type: "checkbox", checked: chosen.indexOf(other.name) >= 0, onchange: function () {
            var now = Array.isArray(step.arguments[arg.name]) ? step.arguments[arg.name] : [];
            var next = now.filter(function (n) { return n !== other.name; });
            if (box.checked) next.push(other.name);
            set(next, false);
          } });
          return el("label", {}, [box, other.name]);
        }));
        if (!body.children.length) body.appendChild(el("span", { className: "muted", text: "Add the steps to choose from." }));
      } else {
        var isObject = OBJECT_KINDS.indexOf(arg.kind) >= 0;
        var source = el("select", { className: "source", "data-arg": arg.name });
        source.appendChild(el("option", { value: "", text: arg.required ? "— choose —" : "(not set)" }));
        if (isObject) {
          var objects = data.objects[arg.kind] || [];
          if (objects.length) {
            source.appendChild(el("optgroup", { label: "In this project" }, objects.map(function (o) {
              return el("option", { value: "obj:" + o.id, text: o.name });
            })));
          }
        } else {
          source.appendChild(el("option", { value: "value", text: "Value" }));
        }
        refOptions(step, arg).forEach(function (group) {
          source.appendChild(el("optgroup", { label: group.label }, group.options.map(function (o) {
            return el("option", { value: o.value, text: o.label });
          })));
        });
        source.appendChild(el("option", { value: "custom", text: "Other ref…" }));
        var current = "";
        if (isRef(value)) current = "ref:" + value.ref;
        else if (isObject && typeof value === "string" && value) current = "obj:" + value;
        else if (value !== undefined && !isObject) current = "value";
        else if (isObject && value !== undefined) current = "value";
        if (current && !source.querySelector('option[value="' + CSS.escape(current) + '"]')) {
          // A ref or an object name the lists do not offer: keep it, shown as it is written.
          var shown = current.indexOf("ref:") === 0 ? current.slice(4) : String(value);
          if (current === "value" && isObject) shown = JSON.stringify(value);
          source.insertBefore(el("option", { value: current, text: shown }), source.children[1] || null);
        }
        source.value = current;
        // A processing step's operation decides which other arguments its form shows.
        var reshapes = step.type === "processing" && arg.name === "operation";
        var literal = literalInput(arg, isRef(value) ? undefined : value, function (next) { set(next, reshapes); });
        var custom = el("input", { type: "text", className: "ref-path mono", placeholder: "steps.train.model",
          value: isRef(value) ? value.ref : "", onchange: function () {
            set(custom.value.trim() ? { ref: custom.value.trim() } : undefined, true);
          } });
        var sync = function () {
          literal.hidden = source.value !== "value" || isObject;
          custom.hidden = source.value !== "custom";
        };
        sync();
        source.addEventListener("change", function () {
          var picked = source.value;
          sync();
          if (picked === "") set(undefined, false);
          else if (picked.indexOf("obj:") === 0) set(picked.slice(4), false);
          else if (picked.indexOf("ref:") === 0) set({ ref: picked.slice(4) }, false);
          else if (picked === "value" && ["boolean", "number", "string"].indexOf(arg.kind) >= 0) {
            set(arg.kind === "boolean" ? false : arg.kind === "number" ? 0 :
              arg.choices && arg.choices.length ? arg.choices[0] : "", true);
          } else if (picked === "value" || picked === "custom") {
            // Nothing to store until something is typed: a JSON value or a ref path.
            (picked === "value" ? literal : custom).focus();
          }
        });
        body = el("div", { className: "arg-inputs" }, [source, literal, custom]);
      }
      return el("div", { className: "field arg", "data-arg-field": arg.name }, [label, body,
        arg.help ? el("div", { className: "help", text: arg.help }) : null,
        errorList(fieldErrors(step.name, "arguments." + arg.name))]);
    }

    function otherArguments(step, declared) {
      var rest = {};
      Object.keys(step.arguments).forEach(function (key) { if (declared.indexOf(key) < 0) rest[key] = step.arguments[key]; });
      var area = el("textarea", { className: "mono", rows: "3", spellcheck: "false", "data-testid": "other-arguments" });
      area.value = Object.keys(rest).length ? JSON.stringify(rest, null, 1) : "";
      area.addEventListener("change", function () {
        var parsed = {};
        if (area.value.trim()) {
          try { parsed = JSON.parse(area.value); } catch (err) {
            area.setCustomValidity("Not valid JSON: " + err.message);
            area.reportValidity();
            return;
          }
          if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) {
            area.setCustomValidity('Give a JSON object, like {"hyperparameters": {"epochs": 5}}.');
            area.reportValidity();
            return;
          }
        }
        area.setCustomValidity("");
        Object.keys(rest).forEach(function (key) { delete step.arguments[key]; });
        Object.keys(parsed).forEach(function (key) { step.arguments[key] = parsed[key]; });
        changed(true);
      });
      var otherErrors = ((errors.steps || {})[step.name] || []).filter(function (e) {
        var head = e.field.split(".");
        return head[0] === "arguments" && head.length > 1 && declared.indexOf(head[1]) < 0;
      });
      var details = el("details", { className: "step-options", open: Object.keys(rest).length > 0 || otherErrors.length > 0 },
        [el("summary", { text: "Other arguments (JSON)" }),
         el("div", { className: "help", text: "Any further arguments this type takes, e.g. hyperparameters for training." }),
         area, errorList(otherErrors)]);
      return details;
    }

    function implicitDependencies(step) {
      var found = [];
      (function walk(value) {
        if (isRef(value)) {
          var parts = value.ref.split(".");
          if (parts[0] === "steps" && parts.length >= 3 && found.indexOf(parts[1]) < 0) found.push(parts[1]);
        } else if (Array.isArray(value)) value.forEach(walk);
        else if (value && typeof value === "object") Object.keys(value).forEach(function (k) { walk(value[k]); });
      })(step.arguments);
      def.steps.forEach(function (other) {
        if (other.type !== "condition") return;
        ["if_true", "if_false"].forEach(function (branch) {
          var names = other.arguments[branch];
          if (Array.isArray(names) && names.indexOf(step.name) >= 0 && found.indexOf(other.name) < 0) found.push(other.name);
        });
      });
      return found;
    }

    function connectField(step) {
      var others = def.steps.filter(function (s) { return s !== step; });
      var boxes = others.map(function (other) {
        var box = el("input", { type: "checkbox", checked: step.depends_on.indexOf(other.name) >= 0, onchange: function () {
          step.depends_on = step.depends_on.filter(function (n) { return n !== other.name; });
          if (box.checked) step.depends_on.push(other.name);
          changed(false);
        } });
        return el("label", { "data-connect": other.name }, [box, other.name]);
      });
      var implied = implicitDependencies(step);
      return el("div", { className: "connect" }, [
        el("label", { text: "Runs after" }),
        boxes.length ? el("div", { className: "checks" }, boxes) : el("span", { className: "muted", text: "No other steps yet." }),
        implied.length ? el("div", { className: "implied", text: "Also waits for " + implied.join(", ") +
          " (its arguments refer to them, or a condition chooses it)." }) : null,
        errorList(fieldErrors(step.name, "depends_on")),
      ]);
    }

    function optionsField(step) {
      var retry = step.retry || {}, cache = step.cache || {};
      function update(section, key, raw, parse) {
        var target = step[section] || {};
        if (raw === "" || raw === undefined) delete target[key]; else target[key] = parse(raw);
        if (Object.keys(target).length) step[section] = target; else delete step[section];
        changed(false);
      }
      var attempts = el("input", { type: "number", min: "1", max: "10", step: "1", value: retry.max_attempts || "",
        placeholder: "1", onchange: function () { update("retry", "max_attempts", attempts.value, Number); } });
      var backoff = el("input", { type: "number", min: "0", step: "any", value: retry.backoff_seconds === undefined ? "" : retry.backoff_seconds,
        placeholder: "5", onchange: function () { update("retry", "backoff_seconds", backoff.value, Number); } });
      var cacheOn = el("input", { type: "checkbox", checked: cache.enabled !== false, onchange: function () {
        update("cache", "enabled", cacheOn.checked ? "" : "false", function () { return false; });
      } });
      var expire = el("input", { type: "number", min: "1", step: "1", value: cache.expire_after_seconds || "",
        placeholder: "2592000", onchange: function () { update("cache", "expire_after_seconds", expire.value, Number); } });
      var problems = fieldErrors(step.name, "retry").concat(fieldErrors(step.name, "cache"));
      var custom = Object.keys(RETRY_DEFAULTS).some(function (key) {
        return retry[key] !== undefined && retry[key] !== RETRY_DEFAULTS[key];
      }) || Object.keys(CACHE_DEFAULTS).some(function (key) {
        return cache[key] !== undefined && cache[key] !== CACHE_DEFAULTS[key];
      });
      return el("details", { className: "step-options", open: custom || problems.length > 0 }, [
        el("summary", { text: "Retries and caching" }),
        el("div", { className: "inline-form" }, [
          el("div", { className: "field" }, [el("label", { text: "Max attempts" }), attempts]),
          el("div", { className: "field" }, [el("label", { text: "Backoff (s)" }), backoff]),
          el("div", { className: "field" }, [el("label", {}, [cacheOn, " Reuse cached results"])]),
          el("div", { className: "field" }, [el("label", { text: "Cache expires after (s)" }), expire]),
        ]),
        errorList(problems),
      ]);
    }

    function renameStep(step, next) {
      var previous = step.name;
      if (!next || next === previous) return;
      step.name = next;
      var prefix = "steps." + previous + ".";
      (function walk(value) {
        if (Array.isArray(value)) value.forEach(walk);
        else if (value && typeof value === "object") {
          if (isRef(value) && value.ref.indexOf(prefix) === 0) value.ref = "steps." + next + "." + value.ref.slice(prefix.length);
          else Object.keys(value).forEach(function (k) { walk(value[k]); });
        }
      })(def.steps.map(function (s) { return s.arguments; }));
      def.steps.forEach(function (other) {
        other.depends_on = other.depends_on.map(function (n) { return n === previous ? next : n; });
        if (other.type === "condition") {
          ["if_true", "if_false"].forEach(function (branch) {
            if (Array.isArray(other.arguments[branch])) {
              other.arguments[branch] = other.arguments[branch].map(function (n) { return n === previous ? next : n; });
            }
          });
        }
      });
      if (errors.steps && errors.steps[previous]) { errors.steps[next] = errors.steps[previous]; delete errors.steps[previous]; }
      changed(true);
    }

    function removeStep(step) {
      def.steps.splice(def.steps.indexOf(step), 1);
      def.steps.forEach(function (other) {
        other.depends_on = other.depends_on.filter(function (n) { return n !== step.name; });
        if (other.type === "condition") {
          ["if_true", "if_false"].forEach(function (branch) {
            if (Array.isArray(other.arguments[branch])) {
              other.arguments[branch] = other.arguments[branch].filter(function (n) { return n !== step.name; });
            }
          });
        }
      });
      changed(true);
    }

    function moveStep(step, delta) {
      var i = def.steps.indexOf(step), j = i + delta;
      if (j < 0 || j >= def.steps.length) return;
      def.steps.splice(i, 1);
      def.steps.splice(j, 0, step);
      changed(true);
    }

    function shownArguments(step, entry) {
      var operation = step.arguments.operation;
      var only = step.type === "processing" && typeof operation === "string" && OPERATION_ARGUMENTS[operation];
      if (!only) return entry.arguments;
      // Arguments of other operations stay hidden unless the step sets them (the server names those).
      return entry.arguments.filter(function (arg) {
        return arg.name === "operation" || arg.name === "dataset" || only.indexOf(arg.name) >= 0 ||
          step.arguments[arg.name] !== undefined;
      });
    }

    function stepCard(step, index) {
      var entry = palette[step.type];
      var nameInput = el("input", { type: "text", className: "step-name", value: step.name, "aria-label": "Step name",
        "data-testid": "step-name", onchange: function () { renameStep(step, nameInput.value.trim()); } });
      var declared = entry ? entry.arguments.map(function (a) { return a.name; }) : [];
      var ownErrors = (errors.steps || {})[step.name] || [];
      var general = ownErrors.filter(function (e) {
        return e.field === "" || ["name", "type", "arguments"].indexOf(e.field) >= 0;
      });
      var card = el("section", { className: "card step-card" + (ownErrors.length ? " has-errors" : ""),
        "data-step-card": step.name }, [
        el("div", { className: "step-head" }, [
          nameInput,
          el("span", { className: "badge", text: entry ? entry.title : (step.type || "no type") }),
          el("span", { className: "spacer" }),
          el("button", { type: "button", className: "btn small", title: "Move up", disabled: index === 0,
            onclick: function () { moveStep(step, -1); } }, ["↑"]),
          el("button", { type: "button", className: "btn small", title: "Move down", disabled: index === def.steps.length - 1,
            onclick: function () { moveStep(step, 1); } }, ["↓"]),
          el("button", { type: "button", className: "btn small danger", "data-testid": "remove-step",
            onclick: function () { removeStep(step); } }, ["Remove"]),
        ]),
        entry && entry.description ? el("p", { className: "step-desc", text: entry.description }) : null,
        entry ? null : el("p", { className: "error", text: "Unknown step type '" + step.type + "': edit it in the JSON tab." }),
        errorList(general),
        entry ? el("div", { className: "arg-grid" }, shownArguments(step, entry).map(function (arg) {
          return argField(step, arg);
        })) : null,
        otherArguments(step, declared),
        connectField(step),
        optionsField(step),
      ]);
      return card;
    }

    function renderSteps() {
      stepEditor.innerHTML = "";
      if (!def.steps.length) {
        stepEditor.appendChild(el("div", { className: "empty" }, [el("h3", { text: "No steps yet" }),
          el("p", { text: "Add a step from the palette: its form follows from what the step type takes." })]));
        return;
      }
      def.steps.forEach(function (step, i) { stepEditor.appendChild(stepCard(step, i)); });
      // Steps the server complained about that no longer exist (renamed since) are still listed.
      Object.keys(errors.steps || {}).forEach(function (name) {
        if (def.steps.some(function (s) { return s.name === name; })) return;
        stepEditor.appendChild(el("div", { className: "alert error" }, [name + ": ",
          errors.steps[name].map(function (e) { return (e.field ? e.field + ": " : "") + e.message; }).join(" · ")]));
      });
    }

    // --- parameters editor ---
    function renderParameters() {
      paramEditor.innerHTML = "";
      Object.keys(def.parameters).forEach(function (name) {
        var value = def.parameters[name];
        var kind = parameterKind(value);
        var nameInput = el("input", { type: "text", value: name, className: "mono", "aria-label": "Parameter name",
          "data-testid": "param-name", onchange: function () { renameParameter(name, nameInput.value.trim()); } });
        var kindSelect = el("select", { "aria-label": "Type", onchange: function () {
          var next = kindSelect.value;
          def.parameters[name] = next === "number" ? (Number(value) || 0) : next === "boolean" ? false : String(value);
          changed(true);
        } }, ["string", "number", "boolean"].map(function (k) { return el("option", { value: k, text: k }); }));
        kindSelect.value = kind;
        var input;
        if (kind === "boolean") {
          input = el("select", { "aria-label": "Default", onchange: function () {
            def.parameters[name] = input.value === "true"; changed(false);
          } }, [el("option", { value: "false", text: "false" }), el("option", { value: "true", text: "true" })]);
          input.value = value ? "true" : "false";
        } else {
          input = el("input", { type: kind === "number" ? "number" : "text", step: "any", value: String(value),
            "aria-label": "Default", "data-testid": "param-default", onchange: function () {
              def.parameters[name] = kind === "number" ? Number(input.value || 0) : input.value;
              changed(false);
            } });
        }
        var problems = (errors.parameters || []).filter(function (e) { return e.field === name || e.field.indexOf(name + ".") === 0; });
        paramEditor.appendChild(el("div", { className: "param-row", "data-param": name }, [nameInput, kindSelect, input,
          el("button", { type: "button", className: "btn small danger", onclick: function () {
            delete def.parameters[name]; changed(true);
          } }, ["Remove"]), errorList(problems)]));
      });
      var orphan = (errors.parameters || []).filter(function (e) { return !(e.field.split(".")[0] in def.parameters); });
      if (orphan.length) paramEditor.appendChild(errorList(orphan));
      paramEditor.appendChild(el("button", { type: "button", className: "btn small", "data-testid": "add-parameter",
        onclick: function () {
          var base = "param", name = base, n = 2;
          while (name in def.parameters) name = base + "_" + n++;
          def.parameters[name] = "";
          changed(true);
        } }, ["+ Add parameter"]));
    }

    function renameParameter(previous, next) {
      if (!next || next === previous || next in def.parameters) { renderParameters(); return; }
      var rebuilt = {};
      Object.keys(def.parameters).forEach(function (key) { rebuilt[key === previous ? next : key] = def.parameters[key]; });
      def.parameters = rebuilt;
      var old = "parameters." + previous;
      (function walk(value) {
        if (Array.isArray(value)) value.forEach(walk);
        else if (value && typeof value === "object") {
          if (isRef(value) && value.ref === old) value.ref = "parameters." + next;
          else Object.keys(value).forEach(function (k) { walk(value[k]); });
        }
      })(def.steps.map(function (s) { return s.arguments; }));
      changed(true);
    }

    function render() {
      renderParameters();
      renderSteps();
    }

    render();
    lastValid.value = JSON.stringify(def);
  }

  // =============================================================================================
  // Execution
  // =============================================================================================
  var executionSource = document.getElementById("execution-data");
  if (executionSource) execution(JSON.parse(executionSource.textContent));

  function execution(data) {
    var steps = Object.create(null);
    var badge = document.getElementById("execution-status");
    var liveState = document.getElementById("live-state");
    window.studioExecutionStatus = data.execution.status;
    window.studioPipelineSteps = {};

    function elapsed(step) {
      if (step.duration !== null && step.duration !== undefined) return step.duration;
      if (!step.started_at) return null;
      return Math.max(0, (Date.now() - Date.parse(step.started_at)) / 1000);
    }

    function drawStep(step) {
      steps[step.name] = step;
      window.studioPipelineSteps[step.name] = step.cached ? "cached" : step.status;
      var node = document.querySelector('svg.dag g.node[data-step="' + CSS.escape(step.name) + '"]');
      if (!node) return;
      node.setAttribute("class", "node status-" + step.status + (step.cached ? " cached" : ""));
      var state = node.querySelector(".state");
      if (step.cached) state.textContent = "cached";
      else if (step.status === "running") state.textContent = "running " + duration(elapsed(step));
      else if (FINAL[step.status] && step.status !== "skipped") state.textContent = duration(elapsed(step));
      else state.textContent = step.status;
      var title = node.querySelector("title");
      if (title) {
        title.textContent = step.name + ": " + step.status + (step.cached ? " (cached)" : "") +
          (step.failure_reason ? " — " + step.failure_reason : step.status_message ? " — " + step.status_message : "");
      }
      var link = node.querySelector("a.node-link");
      var first = (step.links || [])[0];
      if (link && first) link.setAttribute("href", first.url);
    }

    function setStatus(ev) {
      window.studioExecutionStatus = ev.status;
      badge.textContent = ev.status;
      badge.className = "badge " + ev.status;
      badge.title = ev.failure_reason || ev.status_message || "";
    }

    (data.steps || []).forEach(drawStep);
    // Running steps' durations tick on the page; the server's value replaces them when they finish.
    setInterval(function () {
      Object.keys(steps).forEach(function (name) { if (steps[name].status === "running") drawStep(steps[name]); });
    }, 1000);

    whenStudio(function () {
      var panel = window.Studio.panel(data.panel_url, "execution-panel");
      window.Studio.live(data.ws, function (ev) {
        if (ev.type === "execution") {
          var before = window.studioExecutionStatus;
          setStatus(ev);
          if (before !== ev.status) panel.schedule();
        } else if (ev.type === "step") {
          var previous = steps[ev.name];
          drawStep(ev);
          if (!previous || previous.status !== ev.status || previous.attempts !== ev.attempts) panel.schedule();
        }
      }, function (state) {
        if (liveState) liveState.textContent = state === "open" ? "· live" : "· reconnecting…";
      });
    });
  }
})();
