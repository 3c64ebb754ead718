/* inversion-bench leaderboard pages.
 * Tables: Tabulator (vendor/tabulator.min.js); plots: Plotly basic bundle (vendor/plotly-basic.min.js).
 * The data of each page is inlined as JSON (<script type="application/json">), so pages work from file://.
 */
var InvBench = (function () {
  "use strict";

  var PALETTE = ["#1f4e9c", "#d1495b", "#2a9d8f", "#e9a03b", "#7b4fa8", "#5c6b73", "#c76b98", "#3d8bd9", "#8c5a2b", "#66a61e"];
  var FAMILY_COLOR = { none: "#222831" };

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

  // ------------------------------------------------------------------ board page: table

  function digits(field) { return /(^|:)bleu/.test(field) ? 1 : 3; } // sacrebleu is on a 0-100 scale
  function metricFormatter(cell) {
    var v = cell.getValue(), d = digits(cell.getField());
    if (!v || v[0] === null) return "";
    var ci = v[1] === null ? "" : ' <span class="ci">[' + fmt(v[1], d) + ", " + fmt(v[2], d) + "]</span>";
    return '<span class="val">' + fmt(v[0], d) + "</span>" + ci;
  }
  function metricSorter(a, b) {
    var x = a ? a[0] : null, y = b ? b[0] : null;
    if (x === null && y === null) return 0;
    if (x === null) return -1;
    if (y === null) return 1;
    return x - y;
  }

  function boardTable(payload) {
    var rows = payload.rows.map(function (r) {
      var out = Object.assign({}, r);
      Object.keys(r.m).forEach(function (k) { out["m:" + k] = r.m[k]; });
      return out;
    });
    var anyParams = rows.some(function (r) { return r.attack_params; });
    var several = function (f) { return uniq(rows.map(function (r) { return r[f]; })).length > 1; };
    var text = function (title, field, extra) {
      return Object.assign({ title: title, field: field, headerFilter: "input", headerFilterPlaceholder: "filter", frozen: false }, extra || {});
    };
    var cols = [
      text("attack", "attack", {
        formatter: function (c) {
          var r = c.getRow().getData();
          return esc(r.attack) + (r.pretrained ? "" : ' <span class="badge warn">not pretrained</span>');
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
      var dir = payload.higher[m]; // true: higher = more leaked; false: lower; null: a reference level
      cols.push({
        title: m + (dir === true ? " ↑" : dir === false ? " ↓" : " (ref)"), field: "m:" + m, formatter: metricFormatter, sorter: metricSorter, hozAlign: "right",
        visible: payload.headline.indexOf(m) >= 0,
        headerTooltip: m + (dir === null ? ": a reference level (e.g. chance), ranks nothing" : ": " + (dir ? "higher" : "lower") + " = more leaked"),
        cssClass: payload.headline.indexOf(m) >= 0 ? "col-headline" : ""
      });
    });
    payload.utility.forEach(function (u) {
      cols.push({
        title: u + " (utility)", field: "m:utility:" + u, formatter: metricFormatter, sorter: metricSorter, hozAlign: "right",
        cssClass: "col-utility", headerTooltip: "retrieval utility on the defended embeddings"
      });
    });
    [["leaked pairs", "leaked_pairs"], ["victim queries", "victim_queries"], ["wall time (s)", "wall_time_s"],
     ["targets", "limit"], ["date", "date"], ["seed", "seed"]].forEach(function (p) {
      cols.push({ title: p[0], field: p[1], visible: false, hozAlign: "right", sorter: p[1] === "date" ? "string" : "number" });
    });
    var table = new Tabulator("#cells-table", {
      data: rows,
      columns: cols,
      layout: "fitDataFill",
      renderVertical: "basic", // every row in the DOM (boards are small)
      nestedFieldSeparator: false,
      headerSortElement: '<span class="sort-arrow"></span>',
      rowFormatter: function (row) {
        var r = row.getData();
        if (!r.pretrained) row.getElement().classList.add("row-not-pretrained");
        if (r.defense_family === "none") row.getElement().classList.add("row-reference");
      }
    });
    table.on("rowClick", function (e, row) { window.location.href = "cells/" + row.getData().cell + ".html"; });
    var search = document.getElementById("table-search");
    search.addEventListener("input", function () {
      var q = search.value.trim().toLowerCase();
      if (!q) { table.clearFilter(); return; }
      table.setFilter(function (r) {
        return [r.attack, r.attack_params, r.mode, r.defense, r.embedder, r.dataset].join(" ").toLowerCase().indexOf(q) >= 0;
      });
    });
    document.querySelectorAll("#column-chooser input[data-col]").forEach(function (box) {
      var field = box.getAttribute("data-col");
      field = ["leaked_pairs", "victim_queries", "wall_time_s", "limit", "date", "seed"].indexOf(field) >= 0 ? field : "m:" + field;
      box.addEventListener("change", function () { box.checked ? table.showColumn(field) : table.hideColumn(field); });
    });
    return table;
  }

  // ------------------------------------------------------------------ board page: plots

  var PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"] };

  function errorBars(rowsIn, key) {
    return {
      type: "data", symmetric: false, thickness: 1, width: 3,
      array: rowsIn.map(function (r) { var m = r.m[key]; return m && m[2] !== null ? m[2] - m[0] : 0; }),
      arrayminus: rowsIn.map(function (r) { var m = r.m[key]; return m && m[1] !== null ? m[0] - m[1] : 0; })
    };
  }

  function hover(r, metric, util) {
    return "<b>" + esc(r.attack) + (r.attack_params ? " (" + esc(r.attack_params) + ")" : "") + "</b> " + r.mode +
      "<br>defense: " + esc(r.defense) + "<br>" + esc(metric) + ": " + fmt(val(r, metric)) +
      (util ? "<br>" + esc(util) + ": " + fmt(val(r, "utility:" + util)) : "") + (r.pretrained ? "" : "<br><i>not pretrained</i>");
  }

  function paretoFront(points, higherLeaks) {
    // points: {u, leak, label}; defender wants high u and low leakage
    var bad = function (p) { return higherLeaks ? p.leak : -p.leak; };
    return points.filter(function (p) {
      return !points.some(function (q) {
        return q.u >= p.u && bad(q) <= bad(p) && (q.u > p.u || bad(q) < bad(p));
      });
    }).sort(function (a, b) { return a.u - b.u; });
  }

  function privacyUtility(payload, metric) {
    var el = document.getElementById("plot-pu");
    if (!el) return;
    var util = el.getAttribute("data-utility"), ukey = "utility:" + util;
    var rows = payload.rows.filter(function (r) { return val(r, metric) !== null && val(r, ukey) !== null; });
    var families = uniq(payload.rows.map(function (r) { return r.defense_family; }));
    var traces = [];
    // grey segments: naive <-> adaptive of one defense setting
    var bySetting = {};
    rows.forEach(function (r) { (bySetting[r.attack + "|" + r.attack_params + "|" + r.defense] = bySetting[r.attack + "|" + r.attack_params + "|" + r.defense] || []).push(r); });
    var gx = [], gy = [];
    Object.keys(bySetting).forEach(function (k) {
      var g = bySetting[k], n = g.filter(function (r) { return r.mode === "naive"; })[0], a = g.filter(function (r) { return r.mode === "adaptive"; })[0];
      if (n && a) { gx.push(val(n, ukey), val(a, ukey), null); gy.push(val(n, metric), val(a, metric), null); }
    });
    if (gx.length) traces.push({ x: gx, y: gy, mode: "lines", line: { color: "#b8bec6", width: 2 }, hoverinfo: "skip", showlegend: true, name: "naive → adaptive gap" });
    families.forEach(function (fam) {
      ["naive", "adaptive"].forEach(function (mode) {
        var sel = rows.filter(function (r) { return r.defense_family === fam && r.mode === mode; });
        if (!sel.length) return;
        var c = colorOf(fam, families);
        traces.push({
          x: sel.map(function (r) { return val(r, ukey); }), y: sel.map(function (r) { return val(r, metric); }),
          error_y: Object.assign(errorBars(sel, metric), { color: c }),
          mode: "markers", type: "scatter", name: fam + " · " + mode,
          marker: mode === "naive" ? { symbol: "circle-open", size: 11, color: c, line: { width: 2.5, color: c } } : { symbol: "diamond", size: 11, color: c, line: { width: 1, color: "#fff" } },
          text: sel.map(function (r) { return hover(r, metric, util); }), hovertemplate: "%{text}<extra></extra>",
          customdata: sel.map(function (r) { return r.cell; })
        });
      });
    });
    // defender's Pareto front over defense settings, each at its worst-case (strongest-attack) leakage
    var higher = payload.higher[metric] !== false, worst = {};
    rows.forEach(function (r) {
      var k = r.defense, leak = val(r, metric), w = worst[k];
      if (!w || (higher ? leak > w.leak : leak < w.leak)) worst[k] = { u: val(r, ukey), leak: leak, label: r.defense };
    });
    var front = paretoFront(Object.keys(worst).map(function (k) { return worst[k]; }), higher);
    if (front.length) {
      traces.push({
        x: front.map(function (p) { return p.u; }), y: front.map(function (p) { return p.leak; }),
        mode: "lines+markers", name: "defender's Pareto front", line: { dash: "dash", color: "#f0a500", width: 2, shape: "hv" },
        marker: { symbol: "star-open", size: 16, color: "#e09600", line: { width: 2 } },
        text: front.map(function (p) { return "Pareto-optimal: " + esc(p.label) + "<br>worst-case " + esc(metric) + " " + fmt(p.leak) + "<br>" + esc(util) + " " + fmt(p.u); }),
        hovertemplate: "%{text}<extra></extra>"
      });
    }
    Plotly.react(el, traces, {
      margin: { l: 64, r: 16, t: 34, b: 56 }, height: 480, hovermode: "closest", plot_bgcolor: "#fbfcfe",
      xaxis: { title: { text: util + " on the defended embeddings (utility →)" }, zeroline: false, gridcolor: "#e6e9ef" },
      yaxis: { title: { text: metric + (payload.higher[metric] === null ? " (reference level)" : higher ? " (leakage ↑)" : " (leakage ↓)") }, zeroline: false, gridcolor: "#e6e9ef" },
      legend: { orientation: "v", x: 1.01, y: 0.95, font: { size: 12 } }
    }, PLOT_CONFIG);
    bindClicks(el);
  }

  function bindClicks(el) {
    if (el._bound) return;
    el._bound = true;
    el.on("plotly_click", function (ev) {
      var p = ev.points && ev.points[0];
      if (p && p.customdata) window.location.href = "cells/" + p.customdata + ".html";
    });
  }

  function axisPlot(payload, index, metric) {
    var el = document.getElementById("plot-axis-" + index);
    var axis = payload.axes[index], byId = {};
    payload.rows.forEach(function (r) { byId[r.cell] = r; });
    var names = axis.series.map(function (s) { return s.name; });
    var traces = [], util = payload.utility[0], utilDone = {};
    axis.series.forEach(function (s, i) {
      var rows = s.points.map(function (p) { return byId[p[1]]; });
      var xs = s.points.map(function (p) { return p[0]; });
      var c = PALETTE[i % PALETTE.length];
      traces.push({
        x: xs, y: rows.map(function (r) { return val(r, metric); }), error_y: Object.assign(errorBars(rows, metric), { color: c }),
        mode: "lines+markers", name: s.name, line: { color: c, width: 2, dash: s.mode === "adaptive" ? "solid" : "dot" },
        marker: { size: 8, color: c, symbol: s.mode === "adaptive" ? "diamond" : "circle" },
        text: rows.map(function (r) { return hover(r, metric, util); }), hovertemplate: "%{text}<extra></extra>",
        customdata: rows.map(function (r) { return r.cell; })
      });
      if (util && axis.key.indexOf(":") > 0 && axis.key.split(":")[0] !== "" && !utilDone[axis.key]) {
        var us = rows.map(function (r) { return val(r, "utility:" + util); });
        var varies = uniq(us.map(function (u) { return u === null ? "x" : u.toFixed(4); })).length > 1;
        if (varies && (payload.rows.length && axisIsDefense(axis))) {
          utilDone[axis.key] = true;
          traces.push({
            x: xs, y: us, yaxis: "y2", mode: "lines+markers", name: util + " (utility, right axis)",
            line: { color: "#7c8794", width: 2, dash: "dash" }, marker: { symbol: "square-open", size: 7, color: "#7c8794" },
            hovertemplate: util + " %{y:.3f}<extra></extra>"
          });
        }
      }
    });
    var layout = {
      margin: { l: 56, r: 56, t: 34, b: 50 }, height: 340, hovermode: "closest", plot_bgcolor: "#fbfcfe",
      title: { text: axis.label, font: { size: 14 } },
      xaxis: { title: { text: axis.param }, type: axis.log ? "log" : "linear", gridcolor: "#e6e9ef" },
      yaxis: { title: { text: metric }, gridcolor: "#e6e9ef", zeroline: false },
      legend: { orientation: "h", y: -0.25, font: { size: 11 } }
    };
    if (traces.some(function (t) { return t.yaxis === "y2"; })) {
      layout.yaxis2 = { title: { text: util }, overlaying: "y", side: "right", showgrid: false, zeroline: false };
    }
    Plotly.react(el, traces, layout, PLOT_CONFIG);
    bindClicks(el);
    return names;
  }

  function axisIsDefense(axis) { return axis.label.indexOf("(defense ") >= 0; }

  function board() {
    var payload = data("board-data");
    boardTable(payload);
    var picker = document.getElementById("metric-picker");
    var draw = function () {
      var metric = picker.value;
      privacyUtility(payload, metric);
      payload.axes.forEach(function (_, i) { axisPlot(payload, i, metric); });
    };
    picker.addEventListener("change", draw);
    draw();
  }

  // ------------------------------------------------------------------ cell page

  function highlight(recon, target) {
    var words = {};
    (String(target).toLowerCase().match(/[a-z0-9]+/g) || []).forEach(function (w) { words[w] = true; });
    return String(recon).split(/([A-Za-z0-9]+)/).map(function (part, i) {
      if (i % 2 === 1 && words[part.toLowerCase()]) return "<mark>" + esc(part) + "</mark>";
      return esc(part);
    }).join("");
  }

  function cell() {
    var s = data("samples-data");
    if (!s.rows.length) return;
    var rows = s.rows.map(function (r) {
      var out = { id: r.id, target: r.target, reconstruction: r.reconstruction };
      s.scores.forEach(function (k) { out["s:" + k] = r.scores[k]; });
      return out;
    });
    var cols = [
      { title: "id", field: "id", width: 130, sorter: "alphanum", formatter: function (c) { return esc(c.getValue()); } },
      { title: "target", field: "target", formatter: function (c) { return esc(c.getValue()); }, widthGrow: 3, minWidth: 240, cssClass: "wrap" },
      { title: "reconstruction", field: "reconstruction", minWidth: 240, widthGrow: 3, cssClass: "wrap",
        formatter: function (c) { return highlight(c.getValue(), c.getRow().getData().target); } }
    ];
    s.scores.forEach(function (k, i) {
      cols.push({ title: k, field: "s:" + k, hozAlign: "right", sorter: "number", visible: i < 6, minWidth: 70,
        formatter: function (c) { var v = c.getValue(); return v === undefined || v === null ? "" : fmt(v, k === "bleu" ? 1 : 3); } });
    });
    var table = new Tabulator("#samples-table", {
      data: rows, columns: cols, layout: "fitColumns", nestedFieldSeparator: false,
      pagination: true, paginationSize: 25, paginationSizeSelector: [25, 100, 500, true], paginationCounter: "rows",
      initialSort: s.scores.length ? [{ column: "s:" + s.scores[0], dir: "desc" }] : []
    });
    var search = document.getElementById("samples-search");
    search.addEventListener("input", function () {
      var q = search.value.trim().toLowerCase();
      if (!q) { table.clearFilter(); return; }
      table.setFilter(function (r) { return (r.target + " " + r.reconstruction).toLowerCase().indexOf(q) >= 0; });
    });
  }

  return { board: board, cell: cell, paretoFront: paretoFront };
})();
