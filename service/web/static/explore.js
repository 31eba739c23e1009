// /explore: build a query of a dataset, run it with the tab's token, show its rows as a table
// and a chart, and the equivalent URL and curl command. What it offers (filters, groupings,
// options) comes from /explore/datasets.json, generated from the dataset declarations and the
// OpenAPI document: nothing here lists a dataset's fields.
"use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var state = { datasets: [], dataset: null, chart: null, result: null, chartRows: null };

  // Keys of a row that are not grouping keys.
  // Row members that are figures, not keys (rate, distinct, previous and change: analytics).
  var NOT_KEYS = { count: true, stats: true, suppressed: true, rate: true, distinct: true, previous: true, change: true };
  // Options shown first, in this order; any other parameter the GET operation documents follows.
  var OPTION_ORDER = ["time_zone", "week_start", "fill", "stats", "min_count", "rate"];
  // Options with a control of their own; every other one gets a generic control from its schema
  // (enum: a list, integer: a number, else text), so a parameter the API gains later, such as
  // `rate`, shows up by itself. Add an entry here to give one a better control.
  var OPTION_CONTROLS = {
    stats: function (option, dataset) { return checkboxes(option, dataset.stats); },
  };
  // Values of a date grouping: 2024, 2024-03, 2024-W09, 2024-03-02 (or a full datetime).
  var DATE_VALUE = /^\d{4}(-W\d{2}|-\d{2}(-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?)?)?$/;
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22", "#17becf"];

  // -- building the form from the catalog -----------------------------------------------------

  function element(tag, attributes, children) {
    var node = document.createElement(tag);
    Object.keys(attributes || {}).forEach(function (name) {
      if (name === "text") node.textContent = attributes[name];
      else if (attributes[name] !== undefined && attributes[name] !== null) node.setAttribute(name, attributes[name]);
    });
    (children || []).forEach(function (child) { if (child) node.appendChild(child); });
    return node;
  }

  // Descriptions are Markdown; the explorer renders their `code` spans (and nothing else).
  function markdown(node, source) {
    node.textContent = "";
    String(source || "").split("`").forEach(function (part, index) {
      node.appendChild(index % 2 ? element("code", { text: part }) : document.createTextNode(part));
    });
    return node;
  }

  function option(value, text, title) {
    return element("option", { value: value, text: text || value, title: title || "" });
  }

  function removeButton() {
    var button = element("button", { type: "button", class: "remove", title: "remove", text: "×" });
    button.addEventListener("click", function () { button.parentNode.remove(); changed(); });
    return button;
  }

  function addFilter(name, value) {
    var dataset = state.dataset;
    var select = element("select", { class: "filter-name", "aria-label": "filter" },
      dataset.filters.map(function (f) { return option(f.name, f.name, f.description); }));
    if (name) select.value = name;
    var input = element("input", { class: "filter-value", "aria-label": "value", spellcheck: "false" });
    input.value = value || "";
    var hint = element("small", { class: "hint" });
    var describe = function () {
      var found = dataset.filters.find(function (f) { return f.name === select.value; });
      markdown(hint, found ? found.description : "");
      input.placeholder = found && found.format === "date-time" ? "2024-03-01" : "value, value, …";
    };
    select.addEventListener("change", describe);
    describe();
    $("filters").querySelector(".rows").appendChild(
      element("div", { class: "row filter-row" }, [select, input, removeButton(), hint]));
    changed();
  }

  // A grouping row: a named grouping (values or dates), or age ranges / an admin level, which
  // only a JSON body can express (the explorer then POSTs to the dataset's JSON query endpoint).
  function addGroup(value, extra) {
    var dataset = state.dataset;
    var byKind = function (kind) { return dataset.groups.filter(function (g) { return g.kind === kind; }); };
    var values = byKind("terms").concat(byKind("age"));
    // Numeric fields grouped by ranges: age (also by value) and those only by ranges (delays).
    var ranged = byKind("age").concat(byKind("ranges"));
    var select = element("select", { class: "group-name", "aria-label": "grouping" }, [
      element("optgroup", { label: "values" }, values.map(function (g) { return option(g.name, g.name, g.doc); })),
      element("optgroup", { label: "dates" }, byKind("date").map(function (g) { return option(g.name, g.name, g.doc); })),
      dataset.json_query && (ranged.length || byKind("admin_level").length)
        ? element("optgroup", { label: "ranges and levels" },
          ranged.map(function (g) { return option("ranges:" + g.name, g.name + " ranges…"); })
            .concat(byKind("admin_level").map(function (g) { return option("level:" + g.name, g.name + "…"); })))
        : null,
    ]);
    if (value) select.value = value;
    var input = element("input", { class: "group-extra", "aria-label": "ranges or level", spellcheck: "false" });
    input.value = extra || "";
    var show = function () {
      var kind = select.value.split(":")[0];
      input.hidden = kind !== "ranges" && kind !== "level";
      input.placeholder = kind === "ranges" ? "0-10, 10-20, 20-" : "level: 0 is the root";
    };
    select.addEventListener("change", show);
    show();
    $("groups").querySelector(".rows").appendChild(
      element("div", { class: "row group-row" }, [select, input, removeButton()]));
    changed();
  }

  function checkboxes(opt, names) {
    var box = element("span", { class: "checks", "data-param": opt.name, "data-kind": "list" });
    names.forEach(function (name) {
      var check = element("input", { type: "checkbox", value: name });
      box.appendChild(element("label", {}, [check, document.createTextNode(" " + name)]));
    });
    if (!names.length) box.appendChild(element("small", { text: "no numeric field" }));
    return box;
  }

  function genericControl(opt) {
    var control;
    if (opt.enum) {
      control = element("select", {}, [option("", "—")].concat(opt.enum.map(function (v) { return option(String(v)); })));
    } else if (opt.type === "integer" || opt.type === "number") {
      control = element("input", { type: "number", min: opt.minimum, max: opt.maximum });
    } else {
      control = element("input", { type: "text", spellcheck: "false" });
    }
    control.setAttribute("data-param", opt.name);
    control.setAttribute("data-kind", opt.type === "integer" || opt.type === "number" ? "number" : "text");
    return control;
  }

  function buildOptions() {
    var dataset = state.dataset;
    var grid = $("options").querySelector(".grid");
    grid.textContent = "";
    var rank = function (opt) {
      var at = OPTION_ORDER.indexOf(opt.name);
      return at < 0 ? OPTION_ORDER.length : at;
    };
    dataset.options.slice().sort(function (a, b) { return rank(a) - rank(b); }).forEach(function (opt) {
      var make = OPTION_CONTROLS[opt.name] || genericControl;
      var control = make(opt, dataset);
      control.id = "opt-" + opt.name;
      grid.appendChild(element("label", { title: opt.description, class: rank(opt) < OPTION_ORDER.length ? "" : "more" }, [
        element("span", { text: opt.name }), control,
        markdown(element("small", { class: "hint" }), opt.description)]));
    });
  }

  function chooseDataset(name) {
    state.dataset = state.datasets.find(function (d) { return d.name === name; }) || state.datasets[0];
    $("dataset-doc").textContent = state.dataset.doc;
    $("filters").querySelector(".rows").textContent = "";
    $("groups").querySelector(".rows").textContent = "";
    buildOptions();
    changed();
  }

  // -- the request ----------------------------------------------------------------------------

  function parseRanges(text) {
    var ranges = text.split(",").map(function (s) { return s.trim(); }).filter(Boolean).map(function (part) {
      var found = /^(\d*)\s*-\s*(\d*)$/.exec(part);
      if (!found || (found[1] === "" && found[2] === "")) throw new Error("Not a range: '" + part + "' (write 0-10, 10-20, 20-).");
      return [found[1] === "" ? null : Number(found[1]), found[2] === "" ? null : Number(found[2])];
    });
    if (!ranges.length) throw new Error("Give the ranges, e.g. 0-10, 10-20, 20-.");
    return ranges;
  }

  function optionValues() {
    var values = [];
    document.querySelectorAll("#options [data-param]").forEach(function (control) {
      var name = control.getAttribute("data-param");
      var kind = control.getAttribute("data-kind");
      if (kind === "list") {
        var checked = Array.prototype.map.call(control.querySelectorAll("input:checked"), function (c) { return c.value; });
        if (checked.length) values.push([name, checked.join(","), checked]);
      } else if (control.value.trim() !== "") {
        var text = control.value.trim();
        values.push([name, text, kind === "number" ? Number(text) : text]);
      }
    });
    return values;
  }

  // {method, path, query: [[name, text]], body} from the form; throws on what the page can tell.
  function buildRequest() {
    var dataset = state.dataset;
    var filters = [];
    document.querySelectorAll("#filters .filter-row").forEach(function (row) {
      var value = row.querySelector(".filter-value").value.trim();
      if (value !== "") filters.push([row.querySelector(".filter-name").value, value]);
    });
    var names = [];
    var objects = [];
    document.querySelectorAll("#groups .group-row").forEach(function (row) {
      var value = row.querySelector(".group-name").value;
      var extra = row.querySelector(".group-extra").value.trim();
      var kind = value.split(":")[0];
      var name = value.slice(kind.length + 1);
      var entry;
      if (kind === "ranges") {
        entry = {};
        entry[name] = parseRanges(extra);
        objects.push(entry);
      } else if (kind === "level") {
        if (!/^\d+$/.test(extra)) throw new Error("Give the admin level as a number (0 is the root).");
        entry = {};
        entry[name] = Number(extra);
        objects.push(entry);
      } else {
        names.push(value);
      }
    });
    var options = optionValues();
    if (!objects.length) {
      var query = filters.slice();
      if (names.length) query.push(["group_by", names.join(",")]);
      options.forEach(function (o) { query.push([o[0], o[1]]); });
      return { method: "GET", path: dataset.query.path, query: query, body: null };
    }
    var body = {};
    filters.forEach(function (f) {
      if (!(f[0] in body)) body[f[0]] = f[1];
      else body[f[0]] = [].concat(body[f[0]], f[1]);
    });
    body.group_by = names.concat(objects);
    options.forEach(function (o) { body[o[0]] = o[2]; });
    return { method: "POST", path: dataset.json_query.path, query: [], body: body };
  }

  // Query strings keep `,():/` readable, as people write them (they are safe there).
  function encode(text) {
    return encodeURIComponent(text).replace(/%2C/gi, ",").replace(/%28/g, "(").replace(/%29/g, ")").replace(/%3A/gi, ":").replace(/%2F/gi, "/");
  }

  function urlOf(request) {
    var base = window.location.origin + request.path;
    if (!request.query.length) return base;
    return base + "?" + request.query.map(function (p) { return encode(p[0]) + "=" + encode(p[1]); }).join("&");
  }

  function shellQuote(text) {
    return "'" + text.replace(/'/g, "'\\''") + "'";
  }

  // The token is never written out: the command reads it from $TOKEN.
  function curlOf(request) {
    var parts = ["curl", "-H", '"Authorization: token $TOKEN"'];
    if (request.body) {
      parts.push("-H", shellQuote("Content-Type: application/json"), "-d", shellQuote(JSON.stringify(request.body)));
    }
    parts.push(shellQuote(urlOf(request)));
    return parts.join(" ");
  }

  function changed() {
    if (!state.dataset) return;
    try {
      var request = buildRequest();
      $("url").value = request.body ? "POST " + urlOf(request) + " with the JSON body of the curl command" : urlOf(request);
      $("curl").value = curlOf(request);
    } catch (error) {
      $("url").value = "";
      $("curl").value = error.message;
    }
  }

  function copy(id, button) {
    var field = $(id);
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1200);
    };
    var text = id === "url" ? urlOf(buildRequest()) : field.value;
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { field.select(); document.execCommand("copy"); done(); });
    } else {
      field.select();
      document.execCommand("copy");
      done();
    }
  }

  // -- running it -----------------------------------------------------------------------------

  function showError(status, body, fallback) {
    var box = $("error");
    box.textContent = "";
    var error = body && body.error;
    if (error) {
      box.appendChild(element("strong", { text: status + " " + error.code + ": " }));
      box.appendChild(element("span", { class: "message", text: error.message }));
      if (error.details !== undefined) {
        box.appendChild(element("pre", { class: "details", text: JSON.stringify(error.details, null, 2) }));
      }
    } else {
      box.appendChild(element("span", { class: "message", text: fallback }));
    }
    box.hidden = false;
  }

  function run(event) {
    event.preventDefault();
    var request;
    try {
      request = buildRequest();
    } catch (error) {
      showError("", null, error.message);
      return;
    }
    var headers = { Accept: "application/json" };
    var token = window.EventsToken.header($("token").value);
    if (token) headers.Authorization = token;
    if (request.body) headers["Content-Type"] = "application/json";
    $("error").hidden = true;
    $("status").textContent = "running…";
    var started = performance.now();
    fetch(urlOf(request), {
      method: request.method,
      headers: headers,
      body: request.body ? JSON.stringify(request.body) : undefined,
    }).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        try { body = text ? JSON.parse(text) : null; } catch (e) { body = null; }
        $("status").textContent = response.status + " in " + Math.round(performance.now() - started) + " ms";
        if (!response.ok) {
          clearResult();
          showError(response.status, body, response.status + " " + response.statusText + ": " + text.slice(0, 500));
          return;
        }
        showResult(normalise(body, response.headers), request);
      });
    }).catch(function (error) {
      $("status").textContent = "";
      clearResult();
      showError("", null, "The service did not answer: " + error.message);
    });
  }

  // Plain roundware lists are a bare array with the total in X-Total-Count.
  function normalise(body, headers) {
    if (Array.isArray(body)) {
      var total = headers.get("X-Total-Count");
      return { rows: body, total: total === null ? null : Number(total), exact: undefined,
        next: headers.get("X-Next-Cursor"), suppressed: null };
    }
    return { rows: body.events || [], total: body.total_count, exact: body.exact, next: body.next_cursor,
      suppressed: body.suppressed || null, stats: body.stats };
  }

  function clearResult() {
    $("summary").hidden = true;
    $("chart-box").hidden = true;
    $("rows").textContent = "";
    if (state.chart) { state.chart.destroy(); state.chart = null; }
  }

  function showResult(result, request) {
    state.result = result;
    var grouped = request.body ? true : request.query.some(function (p) { return p[0] === "group_by"; });
    $("total").textContent = result.total === null || result.total === undefined ? "hidden" : result.total;
    $("exact").textContent = result.exact === true ? "yes" : result.exact === false ? "no" : "—";
    $("row-count").textContent = result.rows.length + (grouped ? " rows" : " events") +
      (result.next ? " (more pages: next_cursor)" : "");
    $("suppressed").textContent = result.suppressed && result.suppressed.rows
      ? "· " + result.suppressed.rows + " rows (" + result.suppressed.count + " events) suppressed below " + result.suppressed.min_count
      : "";
    $("summary").hidden = false;
    renderTable(result.rows, result.stats);
    state.chartRows = grouped ? result.rows : [];
    drawChart(state.chartRows);
  }

  function text(value) {
    if (value === null || value === undefined) return "null";
    if (Array.isArray(value) && value.length === 2 && value.every(function (v) { return v === null || typeof v === "number"; })) {
      return value[0] === null ? "< " + value[1] : value[1] === null ? value[0] + "+" : value[0] + "–" + value[1];
    }
    return typeof value === "object" ? JSON.stringify(value) : String(value);
  }

  function columnsOf(rows) {
    var columns = [];
    rows.forEach(function (row) {
      Object.keys(row).forEach(function (key) {
        if (key === "stats") {
          Object.keys(row.stats || {}).forEach(function (field) {
            ["count", "min", "max", "avg", "sum"].forEach(function (s) {
              var column = "stats." + field + "." + s;
              if (columns.indexOf(column) < 0) columns.push(column);
            });
          });
        } else if (columns.indexOf(key) < 0) {
          columns.push(key);
        }
      });
    });
    return columns;
  }

  function cell(row, column) {
    if (column.indexOf("stats.") === 0) {
      var parts = column.split(".");
      var stats = row.stats && row.stats[parts[1]];
      var value = stats ? stats[parts[2]] : null;
      return typeof value === "number" && !Number.isInteger(value) ? value.toFixed(2) : value;
    }
    if (column === "count" && row.suppressed === true) return "suppressed";
    return row[column];
  }

  var MAX_TABLE_ROWS = 2000;

  function renderTable(rows, stats) {
    var table = $("rows");
    table.textContent = "";
    if (!rows.length) {
      table.appendChild(element("caption", { text: stats ? "statistics: " + JSON.stringify(stats) : "no rows" }));
      return;
    }
    var columns = columnsOf(rows);
    table.appendChild(element("thead", {}, [element("tr", {}, columns.map(function (c) {
      return element("th", { text: c, scope: "col" });
    }))]));
    var body = element("tbody");
    rows.slice(0, MAX_TABLE_ROWS).forEach(function (row) {
      body.appendChild(element("tr", {}, columns.map(function (c) {
        var value = cell(row, c);
        return element("td", { text: text(value), class: value === null || value === undefined ? "null" : c === "count" ? "num" : "" });
      })));
    });
    table.appendChild(body);
    if (rows.length > MAX_TABLE_ROWS) {
      table.appendChild(element("caption", { text: "first " + MAX_TABLE_ROWS + " of " + rows.length + " rows" }));
    }
  }

  // -- the chart ------------------------------------------------------------------------------

  function groupKeys(rows) {
    var keys = [];
    rows.forEach(function (row) {
      Object.keys(row).forEach(function (key) { if (!NOT_KEYS[key] && keys.indexOf(key) < 0) keys.push(key); });
    });
    return keys;
  }

  // The key to put on a time axis: one whose values all look like dates. Rows of a date
  // grouping are keyed by the grouping's name (`day(start_time)`) or by its field
  // (`start_time`): either is preferred; a key of another grouping (e.g. location 2024) is
  // taken only if its values cannot be plain numbers.
  function pickDateKey(rows, keys) {
    var dated = {};
    var others = {};
    state.dataset.groups.forEach(function (g) {
      if (g.kind === "date") { dated[g.key] = true; dated[g.name] = true; dated[g.field] = true; }
      else others[g.key] = true;
    });
    var best = null;
    var bestScore = -1;
    keys.forEach(function (key) {
      var values = rows.map(function (row) { return row[key]; }).filter(function (v) { return v !== null && v !== undefined; });
      if (!values.length || !values.every(function (v) { return DATE_VALUE.test(String(v)); })) return;
      var dashed = values.some(function (v) { return String(v).indexOf("-") > 0; });
      if (!dated[key] && !dashed && others[key]) return; // 4-digit values of a non-date key
      var score = (dated[key] ? 2 : 0) + (dashed ? 1 : 0);
      if (score > bestScore) { best = key; bestScore = score; }
    });
    return best;
  }

  function countOf(row) {
    return row.suppressed === true ? null : row.count;
  }

  function chartData(rows) {
    var keys = groupKeys(rows);
    var dateKey = pickDateKey(rows, keys);
    if (!dateKey) {
      return { dateKey: null, labels: rows.map(function (row) {
        return keys.map(function (k) { return text(row[k]); }).join(" · ");
      }), datasets: [{ label: "count", data: rows.map(countOf), backgroundColor: COLORS[0], borderColor: COLORS[0] }] };
    }
    var others = keys.filter(function (k) { return k !== dateKey; });
    var labels = [];
    var series = [];
    var cells = {};
    rows.forEach(function (row) {
      var label = text(row[dateKey]);
      var name = others.length ? others.map(function (k) { return text(row[k]); }).join(" · ") : "count";
      if (labels.indexOf(label) < 0) labels.push(label);
      if (series.indexOf(name) < 0) series.push(name);
      cells[name + "\u0000" + label] = countOf(row);
    });
    labels.sort(function (a, b) { return a === "null" ? 1 : b === "null" ? -1 : a < b ? -1 : a > b ? 1 : 0; });
    return {
      dateKey: dateKey,
      labels: labels,
      datasets: series.map(function (name, index) {
        var color = COLORS[index % COLORS.length];
        return { label: name, backgroundColor: color, borderColor: color, data: labels.map(function (label) {
          var key = name + "\u0000" + label;
          return key in cells ? cells[key] : 0;
        }) };
      }),
    };
  }

  function drawChart(rows) {
    if (state.chart) { state.chart.destroy(); state.chart = null; }
    if (!rows.length) { $("chart-box").hidden = true; return; }
    $("chart-box").hidden = false;
    if (typeof window.Chart === "undefined") {
      $("chart-note").textContent = "The chart library is not served (run `npm ci` in the project).";
      return;
    }
    var data = chartData(rows);
    var select = $("chart-type");
    select.querySelector("option[value=line]").disabled = !data.dateKey;
    var type = data.dateKey ? select.value : "bar";
    $("chart-note").textContent = data.dateKey ? "over " + data.dateKey : "";
    state.chart = new window.Chart($("chart"), {
      type: type,
      data: { labels: data.labels, datasets: data.datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        spanGaps: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { display: data.datasets.length > 1 } },
      },
    });
  }

  // -- start ----------------------------------------------------------------------------------

  function start() {
    $("token").value = window.EventsToken.get();
    $("token").addEventListener("input", function () { window.EventsToken.set($("token").value); });
    $("forget").addEventListener("click", function () { $("token").value = ""; window.EventsToken.set(""); });
    $("dataset").addEventListener("change", function () { chooseDataset($("dataset").value); });
    $("add-filter").addEventListener("click", function () { addFilter(); });
    $("add-group").addEventListener("click", function () { addGroup(); });
    $("query").addEventListener("input", changed);
    $("query").addEventListener("change", changed);
    $("query").addEventListener("submit", run);
    $("copy-url").addEventListener("click", function (e) { copy("url", e.target); });
    $("copy-curl").addEventListener("click", function (e) { copy("curl", e.target); });
    $("chart-type").addEventListener("change", function () {
      if (state.chartRows) drawChart(state.chartRows);
    });
    fetch(document.body.getAttribute("data-catalog")).then(function (r) { return r.json(); }).then(function (catalog) {
      state.datasets = catalog.datasets;
      state.datasets.forEach(function (d) { $("dataset").appendChild(option(d.name, d.name, d.doc)); });
      chooseDataset(state.datasets[0].name);
      document.body.setAttribute("data-ready", "true");
    }).catch(function (error) {
      showError("", null, "Could not read what the service offers: " + error.message);
    });
  }

  // For tests and the console: the form's building blocks.
  window.Explorer = { addFilter: addFilter, addGroup: addGroup, chooseDataset: chooseDataset,
    pickDateKey: pickDateKey, chartData: chartData, state: state };
  start();
})();
