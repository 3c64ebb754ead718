/* inversion-bench leaderboard pages.
 * Tables: Tabulator (vendor/tabulator.min.js); plots: Plotly basic bundle (vendor/plotly-basic.min.js).
 * The data of each page is inlined as JSON (<script type="application/json">), so pages work from file://.
 * View state (metric, sort, filters) lives in the address's #fragment, so a copied link shows the same view.
 */
var InvBench = (function () {
  "use strict";

  var PALETTE = ["#1f4e9c", "#d1495b", "#2a9d8f", "#e9a03b", "#7b4fa8", "#5c6b73", "#c76b98", "#3d8bd9", "#8c5a2b", "#66a61e"];
  var FAMILY_COLOR = { none: "#222831" };
  var NARROW = 640; // px of plot width under which legends go below and labels shrink

  function data(id) { return JSON.parse(document.getElementById(id).textContent); }
  function fmt(v, d) { return v === null || v === undefined || isNaN(v) ? "–" : Number(v).toFixed(d === undefined ? 3 : d); }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function colorOf(name, names) {
    if (FAMILY_COLOR[name]) return FAMILY_COLOR[name];
    var i = names.filter(function (n) { return !FAMILY_COLOR[n]; }).indexOf(name);
    return PALETTE[(i < 0 ? 0 : i) % PALETTE.length];
  }
  function uniq(xs) { return xs.filter(function (x, i) { return xs.indexOf(x) === i; }); }
  function val(row, key) { var m = row.m[key]; return m ? m[0] : null; }
  function digits(field) { return /(^|:)bleu(@|$)/.test(field) ? 1 : 3; } // sacrebleu is on a 0-100 scale

  // ------------------------------------------------------------------ view state in the address

  function getState() {
    var out = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      if (!kv) return;
      var i = kv.indexOf("=");
      out[decodeURIComponent(i < 0 ? kv : kv.slice(0, i))] = i < 0 ? "" : decodeURIComponent(kv.slice(i + 1));
    });
    return out;
  }
  function setState(changes) {
    var s = getState();
    Object.keys(changes).forEach(function (k) {
      if (changes[k] === null || changes[k] === undefined || changes[k] === "") delete s[k]; else s[k] = changes[k];
    });
    var hash = Object.keys(s).sort().map(function (k) { return encodeURIComponent(k) + "=" + encodeURIComponent(s[k]); }).join("&");
    history.replaceState(null, "", hash ? "#" + hash : location.pathname + location.search);
  }

  // ------------------------------------------------------------------ copy buttons

  function copyButtons() {
    document.querySelectorAll("button.copy[data-copy]").forEach(function (b) {
      b.addEventListener("click", function () {
        var text = b.getAttribute("data-copy");
        var done = function () { b.textContent = "copied"; setTimeout(function () { b.textContent = "copy"; }, 1500); };
        var fallback = function () {
          var ta = document.createElement("textarea");
          ta.value = text; ta.setAttribute("readonly", ""); ta.style.position = "fixed"; ta.style.opacity = "0";
          document.body.appendChild(ta); ta.select();
          try { document.execCommand("copy"); done(); } catch (e) { b.textContent = "select and copy"; }
          document.body.removeChild(ta);
        };
        if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
        else fallback();
      });
    });
  }

  // ------------------------------------------------------------------ tables: state kept in the address

  function keepTableState(table, prefix, search, filterFn) {
    table.on("dataSorted", function (sorters) {
      var s = sorters && sorters[0];
      var change = {}; change[prefix + "sort"] = s ? s.field + ":" + s.dir : null;
      setState(change);
    });
    table.on("dataFiltered", function () {
      var change = {};
      var filters = table.getHeaderFilters().filter(function (f) { return f.value; });
      change[prefix + "filter"] = filters.length ? JSON.stringify(filters.map(function (f) { return [f.field, f.value]; })) : null;
      setState(change);
    });
    if (search) {
      var apply = function () {
        var q = search.value.trim().toLowerCase();
        var change = {}; change[prefix + "q"] = q || null; setState(change);
        if (!q) { table.clearFilter(); return; }
        table.setFilter(function (r) { return filterFn(r).toLowerCase().indexOf(q) >= 0; });
      };
      search.addEventListener("input", apply);
      var q0 = getState()[prefix + "q"];
      if (q0) { search.value = q0; table.on("tableBuilt", apply); }
    }
  }
  function initialSort(prefix, fields, fallback) {
    var s = getState()[prefix + "sort"];
    if (s) {
      var i = s.lastIndexOf(":"), field = s.slice(0, i), dir = s.slice(i + 1);
      if (fields.indexOf(field) >= 0 && (dir === "asc" || dir === "desc")) return [{ column: field, dir: dir }];
    }
    return fallback;
  }
  function initialFilters(prefix, fields) {
    try {
      var f = JSON.parse(getState()[prefix + "filter"] || "[]");
      return f.filter(function (p) { return fields.indexOf(p[0]) >= 0; }).map(function (p) { return { field: p[0], value: p[1] }; });
    } catch (e) { return []; }
  }

  // ------------------------------------------------------------------ board page: table

  function metricFormatter(cell) {
    var v = cell.getValue(), field = cell.getField(), d = digits(field);
    if (!v || v[0] === null) return "";
    var ci = v[1] === null ? "" : ' <span class="ci">[' + fmt(v[1], d) + ", " + fmt(v[2], d) + "]</span>";
    var chance = (cell.getRow().getData().at_chance || []).indexOf(field.replace(/^m:/, "")) >= 0 ? ' <span class="mark-chance">at chance</span>' : "";
    return '<span class="val">' + fmt(v[0], d) + "</span>" + ci + chance;
  }
  function metricSorter(a, b) {
    var x = a ? a[0] : null, y = b ? b[0] : null;
    if (x === null && y === null) return 0;
    if (x === null) return -1;
    if (y === null) return 1;
    return x - y;
  }
  var EXTRA_COLS = [["leaked pairs", "leaked_pairs"], ["victim queries", "victim_queries"], ["wall time (s)", "wall_time_s"],
    ["targets", "limit"], ["date", "date"], ["seed", "seed"], ["cell", "cell"]];

  function boardTable(payload) {
    var rows = payload.rows.map(function (r) {
      var out = Object.assign({}, r);
      Object.keys(r.m).forEach(function (k) { out["m:" + k] = r.m[k]; });
      return out;
    });
    var anyParams = rows.some(function (r) { return r.attack_params; });
    var several = function (f) { return uniq(rows.map(function (r) { return r[f]; })).length > 1; };
    var text = function (title, field, extra) {
      return Object.assign({ title: title, field: field, headerFilter: "input", headerFilterPlaceholder: "filter" }, extra || {});
    };
    var cols = [
      text("attack", "attack", {
        frozen: true, minWidth: 96,
        formatter: function (c) {
          var r = c.getRow().getData();
          return '<a class="cell-link" href="cells/' + esc(r.cell) + '.html">' + esc(r.attack) + "</a>" +
            (r.pretrained ? "" : ' <span class="badge warn">not pretrained</span>');
        }
      })
    ];
    if (anyParams) cols.push(text("attack params", "attack_params"));
    cols.push(text("mode", "mode", {
      formatter: function (c) { return '<span class="badge mode-' + esc(c.getValue()) + '">' + esc(c.getValue()) + "</span>"; }
    }));
    cols.push(text("defense", "defense"));
    if (several("embedder")) cols.push(text("victim", "embedder"));
    if (several("dataset")) cols.push(text("dataset", "dataset"));
    payload.leakage.forEach(function (m) {
      var dir = payload.higher[m]; // true: higher = more leaked; false: a cost; null: a reference level
      cols.push({
        title: m + (dir === true ? " ↑" : dir === false ? " ↓ (cost)" : " (ref)"), field: "m:" + m, formatter: metricFormatter, sorter: metricSorter, hozAlign: "right",
        visible: payload.headline.indexOf(m) >= 0,
        headerTooltip: m + (dir === null ? ": a reference level (e.g. chance), ranks nothing" : dir ? ": higher = more leaked" : ": a cost, lower = cheaper for the attacker"),
        cssClass: payload.headline.indexOf(m) >= 0 ? "col-headline" : ""
      });
    });
    payload.utility.forEach(function (u) {
      cols.push({
        title: u + " (utility)", field: "m:utility:" + u, formatter: metricFormatter, sorter: metricSorter, hozAlign: "right",
        cssClass: "col-utility", headerTooltip: "retrieval utility on the defended embeddings"
      });
    });
    EXTRA_COLS.forEach(function (p) {
      cols.push({ title: p[0], field: p[1], visible: false, hozAlign: "right", sorter: p[1] === "date" || p[1] === "cell" ? "string" : "number" });
    });
    var fields = cols.map(function (c) { return c.field; });
    var table = new Tabulator("#cells-table", {
      data: rows,
      columns: cols,
      layout: "fitDataFill",
      renderVertical: "basic", // every row in the DOM (boards are small)
      nestedFieldSeparator: false,
      headerSortElement: '<span class="sort-arrow"></span>',
      initialSort: initialSort("", fields, []),
      initialHeaderFilter: initialFilters("", fields),
      rowFormatter: function (row) {
        var r = row.getData();
        if (!r.pretrained) row.getElement().classList.add("row-not-pretrained");
        if (r.defense_family === "none") row.getElement().classList.add("row-reference");
        if ((r.at_chance || []).length) row.getElement().classList.add("row-chance");
      }
    });
    table.on("rowClick", function (e, row) {
      if (e.target.closest("a, input, button")) return; // the link itself (or a new-tab click) does its own thing
      window.location.href = "cells/" + row.getData().cell + ".html";
    });
    keepTableState(table, "", document.getElementById("table-search"), function (r) {
      return [r.attack, r.attack_params, r.mode, r.defense, r.embedder, r.dataset].join(" ");
    });
    document.querySelectorAll("#column-chooser input[data-col]").forEach(function (box) {
      var field = box.getAttribute("data-col");
      field = EXTRA_COLS.some(function (p) { return p[1] === field; }) ? field : "m:" + field;
      box.addEventListener("change", function () { box.checked ? table.showColumn(field) : table.hideColumn(field); });
    });
    return table;
  }

  // ------------------------------------------------------------------ plots: shared pieces

  var PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"] };

  function niceNum(x, round) {
    var e = Math.floor(Math.log10(x)), f = x / Math.pow(10, e), n;
    if (round) n = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    else n = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return n * Math.pow(10, e);
  }
  // A linear axis with round ticks covering [lo, hi] (values and CI ends), a little padding.
  function niceAxis(values, ticks) {
    var xs = values.filter(function (v) { return v !== null && v !== undefined && isFinite(v); });
    if (!xs.length) return {};
    var lo = Math.min.apply(null, xs), hi = Math.max.apply(null, xs);
    if (hi - lo < 1e-12) { var pad = Math.abs(hi) * 0.1 || 0.1; lo -= pad; hi += pad; }
    var step = niceNum(niceNum(hi - lo, false) / ((ticks || 5) - 1), true);
    var a = Math.floor(lo / step) * step, b = Math.ceil(hi / step) * step;
    if (a === lo) a -= step / 2;
    if (b === hi) b += step / 2;
    var decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    return { range: [a, b], tick0: Math.floor(lo / step) * step, dtick: step, tickformat: "." + decimals + "f" };
  }
  function ciValues(rows, key) {
    var out = [];
    rows.forEach(function (r) { var m = r.m[key]; if (m) { out.push(m[0]); if (m[1] !== null) out.push(m[1], m[2]); } });
    return out;
  }
  function errorBars(rowsIn, key, color) {
    return {
      type: "data", symmetric: false, thickness: 1.2, width: 3, color: color,
      array: rowsIn.map(function (r) { var m = r.m[key]; return m && m[2] !== null ? m[2] - m[0] : 0; }),
      arrayminus: rowsIn.map(function (r) { var m = r.m[key]; return m && m[1] !== null ? m[0] - m[1] : 0; })
    };
  }
  function hover(r, metric, util) {
    return "<b>" + esc(r.attack) + (r.attack_params ? " (" + esc(r.attack_params) + ")" : "") + "</b> " + r.mode +
      "<br>defense: " + esc(r.defense) + "<br>" + esc(metric) + ": " + fmt(val(r, metric), digits(metric)) +
      (util ? "<br>" + esc(util) + ": " + fmt(val(r, "utility:" + util)) : "") + (r.pretrained ? "" : "<br><i>not pretrained</i>") +
      ((r.at_chance || []).indexOf(metric) >= 0 ? "<br><i>at chance</i>" : "") + "<br><i>click: open the cell</i>";
  }
  function narrow(el) { return el.clientWidth < NARROW; }
  function baseLayout(el, height) {
    var n = narrow(el);
    return {
      margin: { l: n ? 48 : 64, r: n ? 10 : 16, t: 28, b: n ? 44 : 52 }, height: n ? height + 150 : height,
      hovermode: "closest", plot_bgcolor: "#fbfcfe", font: { size: n ? 11 : 12 },
      legend: n ? { orientation: "h", x: 0, xanchor: "left", y: -0.22, yanchor: "top", font: { size: 11 } }
        : { orientation: "v", x: 1.01, y: 1, font: { size: 12 } }
    };
  }

  // Point labels that do not collide: each label tries a few spots around its point and is dropped
  // (its point still hovers and clicks) when none is free of other labels, markers and the plot's edge.
  function labelPoints(el, points, xlog) {
    var fl = el._fullLayout;
    if (!fl || !fl._size || !fl.xaxis || !fl.yaxis) return;
    var sz = fl._size, xr = fl.xaxis.range, yr = fl.yaxis.range;
    var fx = function (x) { var v = xlog ? Math.log10(x) : x; return sz.l + (v - xr[0]) / (xr[1] - xr[0]) * sz.w; };
    var fy = function (y) { return sz.t + (1 - (y - yr[0]) / (yr[1] - yr[0])) * sz.h; };
    var small = narrow(el), cw = small ? 5.6 : 6.2, h = small ? 12 : 14;
    var marks = points.map(function (p) { var x = fx(p.x), y = fy(p.y); return { l: x - 6, r: x + 6, t: y - 6, b: y + 6 }; });
    var placed = [], annotations = [];
    var hit = function (a, b) { return a.l < b.r && b.l < a.r && a.t < b.b && b.t < a.b; };
    var spots = [[8, -9, "left"], [8, 9, "left"], [-8, -9, "right"], [-8, 9, "right"], [0, -16, "center"], [0, 16, "center"]];
    points.filter(function (p) { return p.label; }).forEach(function (p) {
      var px = fx(p.x), py = fy(p.y), w = p.label.length * cw + 4;
      for (var i = 0; i < spots.length; i++) {
        var dx = spots[i][0], dy = spots[i][1], anchor = spots[i][2];
        var l = anchor === "left" ? px + dx : anchor === "right" ? px + dx - w : px - w / 2;
        var box = { l: l, r: l + w, t: py + dy - h / 2, b: py + dy + h / 2 };
        if (box.l < sz.l || box.r > sz.l + sz.w || box.t < sz.t || box.b > sz.t + sz.h) continue;
        if (placed.some(function (b) { return hit(b, box); })) continue;
        if (marks.some(function (m) { return hit(m, box); })) continue;
        placed.push(box);
        annotations.push({ x: xlog ? Math.log10(p.x) : p.x, y: p.y, xref: "x", yref: "y", text: esc(p.label), showarrow: false,
          xanchor: anchor, yanchor: "middle", xshift: dx, yshift: -dy, font: { size: small ? 10 : 11, color: p.color || "#344054" },
          captureevents: false });
        break;
      }
    });
    var keep = ((el.layout && el.layout.annotations) || []).filter(function (a) { return a._fixed; });
    Plotly.relayout(el, { annotations: keep.concat(annotations) });
  }
  function cornerNote(text, x, y) {
    return { xref: "paper", yref: "paper", x: x, y: y, xanchor: x > 0.5 ? "right" : "left", yanchor: y > 0.5 ? "top" : "bottom",
      text: text, showarrow: false, font: { size: 11, color: "#1b6e3a" }, bgcolor: "rgba(232,246,237,.9)", bordercolor: "#9fd3b0",
      borderpad: 3, _fixed: true };
  }
  function floorShapes(payload, metric, xref) {
    return (payload.floors[metric] || []).map(function (f) {
      return { type: "line", xref: xref || "paper", x0: 0, x1: 1, yref: "y", y0: f.value, y1: f.value, line: { color: "#8a94a6", width: 1.5, dash: "dot" } };
    });
  }
  function floorNotes(payload, metric) {
    return (payload.floors[metric] || []).map(function (f) {
      return { xref: "paper", x: 0, y: f.value, yref: "y", xanchor: "left", yanchor: "bottom", showarrow: false,
        text: "chance floor " + fmt(f.value, digits(metric)), font: { size: 10, color: "#667085" }, _fixed: true };
    });
  }
  function react(el, traces, layout) {
    el.style.height = layout.height + "px"; // the box holds the whole figure (legend below included)
    return Plotly.react(el, traces, layout, PLOT_CONFIG);
  }
  function bindClicks(el, prefix) {
    if (el._bound) return;
    el._bound = true;
    el.on("plotly_click", function (ev) {
      var p = ev.points && ev.points[0];
      if (p && typeof p.customdata === "string") window.location.href = (prefix || "") + "cells/" + p.customdata + ".html";
    });
  }
  function chanceTrace(rows, metric, xOf) {
    var sel = rows.filter(function (r) { return (r.at_chance || []).indexOf(metric) >= 0; });
    if (!sel.length) return null;
    return { x: sel.map(xOf), y: sel.map(function (r) { return val(r, metric); }), mode: "markers", name: "at chance",
      marker: { symbol: "x-thin-open", size: 16, color: "#5c6b73", line: { width: 2, color: "#5c6b73" } },
      customdata: sel.map(function (r) { return r.cell; }), hoverinfo: "skip" };
  }

  // ------------------------------------------------------------------ board page: privacy vs utility

  function privacyUtility(payload, metric) {
    var el = document.getElementById("plot-pu");
    if (!el) return;
    var util = el.getAttribute("data-utility"), ukey = "utility:" + util;
    var rows = payload.rows.filter(function (r) { return val(r, metric) !== null && val(r, ukey) !== null; });
    var families = uniq(payload.rows.map(function (r) { return r.defense_family; }));
    var traces = [], labels = [];
    var bySetting = {};
    rows.forEach(function (r) { var k = r.attack + "|" + r.attack_params + "|" + r.defense; (bySetting[k] = bySetting[k] || []).push(r); });
    var gx = [], gy = [];
    Object.keys(bySetting).forEach(function (k) {
      var g = bySetting[k], n = g.filter(function (r) { return r.mode === "naive"; })[0], a = g.filter(function (r) { return r.mode === "adaptive"; })[0];
      if (n && a) { gx.push(val(n, ukey), val(a, ukey), null); gy.push(val(n, metric), val(a, metric), null); }
      var top = g.slice().sort(function (p, q) { return val(q, metric) - val(p, metric); })[0]; // one label per setting
      labels.push({ x: val(top, ukey), y: val(top, metric), color: colorOf(top.defense_family, families),
        label: (payload.several_attacks ? top.attack + " · " : "") + top.defense });
    });
    if (gx.length) traces.push({ x: gx, y: gy, mode: "lines", line: { color: "#b8bec6", width: 2 }, hoverinfo: "skip", showlegend: true, name: "naive → adaptive gap" });
    var front = payload.fronts[metric];
    if (front && front.stair.length > 1) {
      traces.push({ x: front.stair.map(function (p) { return p[0]; }), y: front.stair.map(function (p) { return p[1]; }), mode: "lines",
        name: "least leakage reachable", line: { dash: "dash", color: "#e09600", width: 2 }, hoverinfo: "skip" });
    }
    families.forEach(function (fam) {
      ["naive", "adaptive"].forEach(function (mode) {
        var sel = rows.filter(function (r) { return r.defense_family === fam && r.mode === mode; });
        if (!sel.length) return;
        var c = colorOf(fam, families);
        traces.push({
          x: sel.map(function (r) { return val(r, ukey); }), y: sel.map(function (r) { return val(r, metric); }),
          error_y: errorBars(sel, metric, c), error_x: errorBars(sel, ukey, c),
          mode: "markers", type: "scatter", name: fam + " · " + mode,
          marker: mode === "naive" ? { symbol: "circle-open", size: 11, color: c, line: { width: 2.5, color: c } } : { symbol: "diamond", size: 11, color: c, line: { width: 1, color: "#fff" } },
          text: sel.map(function (r) { return hover(r, metric, util); }), hovertemplate: "%{text}<extra></extra>",
          customdata: sel.map(function (r) { return r.cell; })
        });
      });
    });
    if (front && front.stars.length) {
      var stars = rows.filter(function (r) { return front.stars.indexOf(r.cell) >= 0; });
      traces.push({ x: stars.map(function (r) { return val(r, ukey); }), y: stars.map(function (r) { return val(r, metric); }), mode: "markers",
        name: "★ Pareto front (CIs separate)", marker: { symbol: "star-open", size: 19, color: "#e09600", line: { width: 2 } },
        customdata: stars.map(function (r) { return r.cell; }), text: stars.map(function (r) { return "Pareto front: " + esc(r.defense) + "<br>" + hover(r, metric, util); }),
        hovertemplate: "%{text}<extra></extra>" });
    }
    var chance = chanceTrace(rows, metric, function (r) { return val(r, ukey); });
    if (chance) traces.push(chance);
    var layout = baseLayout(el, 480);
    var floors = (payload.floors[metric] || []).map(function (f) { return f.value; });
    var xa = niceAxis(ciValues(rows, ukey)), ya = niceAxis(ciValues(rows, metric).concat(floors));
    layout.xaxis = Object.assign({ title: { text: util + " on the defended embeddings (utility →)" }, zeroline: false, gridcolor: "#e6e9ef" }, xa);
    layout.yaxis = Object.assign({ title: { text: metric + " (leakage ↑)" }, zeroline: false, gridcolor: "#e6e9ef" }, ya);
    layout.shapes = floorShapes(payload, metric);
    layout.annotations = [cornerNote("defender's better corner ↘<br>more utility, less leakage", 1, 0)].concat(floorNotes(payload, metric));
    react(el, traces, layout).then(function () { labelPoints(el, labels, false); });
    bindClicks(el);
  }

  // ------------------------------------------------------------------ board page: swept axes

  function axisPlot(payload, index, metric) {
    var el = document.getElementById("plot-axis-" + index);
    var axis = payload.axes[index], byId = {};
    payload.rows.forEach(function (r) { byId[r.cell] = r; });
    var traces = [], util = payload.utility[0], utilDone = false, labels = [], all = [];
    axis.series.forEach(function (s, i) {
      var rows = s.points.map(function (p) { return byId[p[1]]; });
      var xs = s.points.map(function (p) { return p[0]; });
      var c = PALETTE[i % PALETTE.length];
      all = all.concat(rows);
      traces.push({
        x: xs, y: rows.map(function (r) { return val(r, metric); }), error_y: errorBars(rows, metric, c),
        mode: "lines+markers", name: s.name, line: { color: c, width: 2, dash: s.mode === "adaptive" ? "solid" : "dot" },
        marker: { size: 8, color: c, symbol: s.mode === "adaptive" ? "diamond" : "circle" },
        text: rows.map(function (r) { return hover(r, metric, util); }), hovertemplate: "%{text}<extra></extra>",
        customdata: rows.map(function (r) { return r.cell; })
      });
      var last = rows.length - 1;
      if (last >= 0 && val(rows[last], metric) !== null) labels.push({ x: xs[last], y: val(rows[last], metric), label: s.name, color: c });
      if (util && !utilDone && axisIsDefense(axis)) {
        var us = rows.map(function (r) { return val(r, "utility:" + util); });
        var varies = uniq(us.map(function (u) { return u === null ? "x" : u.toFixed(4); })).length > 1;
        if (varies) {
          utilDone = true;
          traces.push({
            x: xs, y: us, yaxis: "y2", mode: "lines+markers", name: util + " (utility, right axis)",
            error_y: errorBars(rows, "utility:" + util, "#7c8794"),
            line: { color: "#7c8794", width: 2, dash: "dash" }, marker: { symbol: "square-open", size: 7, color: "#7c8794" },
            hovertemplate: util + " %{y:.3f}<extra></extra>"
          });
        }
      }
    });
    var chance = chanceTrace(all, metric, function (r) {
      var hit = null;
      axis.series.forEach(function (s) { s.points.forEach(function (p) { if (p[1] === r.cell) hit = p[0]; }); });
      return hit;
    });
    if (chance) traces.push(chance);
    var layout = baseLayout(el, 340);
    layout.legend = { orientation: "h", x: 0, xanchor: "left", y: -0.28, yanchor: "top", font: { size: 11 } };
    layout.margin.b = 60;
    layout.height = narrow(el) ? 440 : 380;
    layout.margin.r = utilDone ? 56 : 16;
    var floors = (payload.floors[metric] || []).map(function (f) { return f.value; });
    var xs = [];
    axis.series.forEach(function (s) { s.points.forEach(function (p) { xs.push(p[0]); }); });
    layout.xaxis = Object.assign({ title: { text: AXIS_TITLE(axis) }, type: axis.log ? "log" : "linear", gridcolor: "#e6e9ef", zeroline: false },
      axis.log ? logTicks(uniq(xs).sort(function (a, b) { return a - b; }), narrow(el)) : niceAxis(xs));
    layout.yaxis = Object.assign({ title: { text: metric + " (leakage ↑)" }, gridcolor: "#e6e9ef", zeroline: false }, niceAxis(ciValues(all, metric).concat(floors)));
    if (utilDone) {
      layout.yaxis2 = Object.assign({ title: { text: util + " (utility)" }, overlaying: "y", side: "right", showgrid: false, zeroline: false },
        niceAxis(ciValues(all, "utility:" + util)));
    }
    layout.shapes = floorShapes(payload, metric);
    layout.annotations = floorNotes(payload, metric);
    react(el, traces, layout).then(function () { labelPoints(el, labels, axis.log); });
    bindClicks(el);
  }
  // A log axis ticks at the measured settings (few, so their labels do not collide), else at decades.
  function logTicks(xs, small) {
    if (xs.length <= (small ? 4 : 8)) return { tickvals: xs, ticktext: xs.map(function (x) { return String(Number(x.toPrecision(3))); }) };
    return { dtick: 1, tickformat: "~g" };
  }
  function AXIS_TITLE(axis) { return axis.label.replace(/ \(.*\)$/, ""); }
  function axisIsDefense(axis) { return axis.key.indexOf(":") > 0 && axis.label.indexOf("(defense ") >= 0; }

  // ------------------------------------------------------------------ board page: leakage against cost

  function costPlot(payload, metric, cost) {
    var el = document.getElementById("plot-cost");
    if (!el || !cost) return;
    var rows = payload.rows.filter(function (r) { return val(r, metric) !== null && val(r, cost) !== null; });
    var families = uniq(payload.rows.map(function (r) { return r.defense_family; }));
    var traces = [], labels = [];
    families.forEach(function (fam) {
      var sel = rows.filter(function (r) { return r.defense_family === fam; });
      if (!sel.length) return;
      var c = colorOf(fam, families);
      traces.push({ x: sel.map(function (r) { return val(r, cost); }), y: sel.map(function (r) { return val(r, metric); }),
        error_x: errorBars(sel, cost, c), error_y: errorBars(sel, metric, c), mode: "markers", name: fam,
        marker: { size: 10, color: c, symbol: "circle" }, customdata: sel.map(function (r) { return r.cell; }),
        text: sel.map(function (r) { return hover(r, metric) + "<br>" + esc(cost) + ": " + fmt(val(r, cost), 1); }), hovertemplate: "%{text}<extra></extra>" });
      sel.forEach(function (r) { labels.push({ x: val(r, cost), y: val(r, metric), label: r.defense + (r.mode === "adaptive" ? " (A)" : ""), color: c }); });
    });
    var layout = baseLayout(el, 400);
    layout.xaxis = Object.assign({ title: { text: cost + " (cost to the attacker →)" }, gridcolor: "#e6e9ef", zeroline: false }, niceAxis(ciValues(rows, cost)));
    layout.yaxis = Object.assign({ title: { text: metric + " (leakage ↑)" }, gridcolor: "#e6e9ef", zeroline: false }, niceAxis(ciValues(rows, metric)));
    layout.annotations = [cornerNote("defender's better corner ↘<br>costly and little leaked", 1, 0)];
    react(el, traces, layout).then(function () { labelPoints(el, labels, false); });
    bindClicks(el);
  }

  function board() {
    var payload = data("board-data");
    boardTable(payload);
    copyButtons();
    var picker = document.getElementById("metric-picker"), costPicker = document.getElementById("cost-picker");
    var state = getState();
    if (state.metric && payload.picker.indexOf(state.metric) >= 0) picker.value = state.metric;
    if (costPicker && state.cost && payload.costs.indexOf(state.cost) >= 0) costPicker.value = state.cost;
    var draw = function () {
      var metric = picker.value;
      privacyUtility(payload, metric);
      payload.axes.forEach(function (_, i) { axisPlot(payload, i, metric); });
      if (costPicker) costPlot(payload, metric, costPicker.value);
    };
    picker.addEventListener("change", function () { setState({ metric: picker.value === payload.primary ? null : picker.value }); draw(); });
    if (costPicker) costPicker.addEventListener("change", function () { setState({ cost: costPicker.value }); draw(); });
    var width = window.innerWidth, timer = null;
    window.addEventListener("resize", function () {
      if (window.innerWidth === width) return;
      width = window.innerWidth;
      clearTimeout(timer);
      timer = setTimeout(draw, 200); // legends and labels follow the width
    });
    draw();
  }

  // ------------------------------------------------------------------ overview page

  function overview() {
    copyButtons();
    var state = getState();
    document.querySelectorAll("select.ov-picker").forEach(function (sel) {
      var key = "m-" + sel.getAttribute("data-group");
      var show = function () {
        var card = document.getElementById("ov-" + sel.getAttribute("data-group"));
        card.querySelectorAll(".ov-block").forEach(function (b) { b.hidden = b.getAttribute("data-metric") !== sel.value; });
      };
      if (state[key] && Array.prototype.some.call(sel.options, function (o) { return o.value === state[key]; })) sel.value = state[key];
      sel.addEventListener("change", function () {
        var change = {}; change[key] = sel.selectedIndex === 0 ? null : sel.value; setState(change); show();
      });
      show();
    });
  }

  // ------------------------------------------------------------------ cell and target pages

  function wordsOf(text) { return String(text).toLowerCase().match(/[\p{L}\p{N}]+/gu) || []; }
  function highlight(recon, target) {
    var words = {};
    wordsOf(target).forEach(function (w) { words[w] = true; });
    return String(recon).split(/([\p{L}\p{N}]+)/u).map(function (part, i) {
      if (i % 2 === 1 && words[part.toLowerCase()]) return "<mark>" + esc(part) + "</mark>";
      return esc(part);
    }).join("");
  }

  function cell() {
    copyButtons();
    var s = data("samples-data");
    if (!s.rows.length) return;
    var rows = s.rows.map(function (r) {
      var out = { id: r.id, target: r.target, reconstruction: r.reconstruction, page: r.target_page };
      s.scores.forEach(function (k) { out["s:" + k] = r.scores[k]; });
      return out;
    });
    var cols = [
      { title: "id", field: "id", width: 130, sorter: "alphanum", frozen: true, formatter: function (c) {
        var page = c.getRow().getData().page;
        return page ? '<a href="' + esc(page) + '" title="this target across every attack and defense">' + esc(c.getValue()) + "</a>" : esc(c.getValue());
      } },
      { title: "target", field: "target", formatter: function (c) { return esc(c.getValue()); }, widthGrow: 3, minWidth: 200, cssClass: "wrap" },
      { title: "reconstruction", field: "reconstruction", minWidth: 200, widthGrow: 3, cssClass: "wrap",
        formatter: function (c) { return highlight(c.getValue(), c.getRow().getData().target); } }
    ];
    s.scores.forEach(function (k, i) {
      cols.push({ title: k, field: "s:" + k, hozAlign: "right", sorter: "number", visible: i < 6, minWidth: 70,
        formatter: function (c) { var v = c.getValue(); return v === undefined || v === null ? "" : fmt(v, digits(k)); } });
    });
    var fields = cols.map(function (c) { return c.field; });
    var table = new Tabulator("#samples-table", {
      data: rows, columns: cols, layout: window.innerWidth < NARROW ? "fitData" : "fitColumns", nestedFieldSeparator: false,
      pagination: true, paginationSize: 25, paginationSizeSelector: [25, 100, 500, true], paginationCounter: "rows",
      initialSort: initialSort("", fields, s.scores.length ? [{ column: "s:" + s.scores[0], dir: "desc" }] : [])
    });
    keepTableState(table, "", document.getElementById("samples-search"), function (r) { return r.target + " " + r.reconstruction; });
  }

  function target() {
    document.querySelectorAll("td.recon-text").forEach(function (td) {
      td.innerHTML = highlight(td.textContent, td.getAttribute("data-target"));
    });
  }

  function targets() {
    var search = document.getElementById("targets-search"), items = document.querySelectorAll("#targets-list li");
    var apply = function () {
      var q = search.value.trim().toLowerCase();
      setState({ q: q || null });
      items.forEach(function (li) { li.hidden = q && li.textContent.toLowerCase().indexOf(q) < 0; });
    };
    search.value = getState().q || "";
    search.addEventListener("input", apply);
    if (search.value) apply();
  }

  return { board: board, cell: cell, overview: overview, target: target, targets: targets, niceAxis: niceAxis, highlight: highlight };
})();
