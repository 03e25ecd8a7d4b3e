// Interactive metric charts: uPlot (static/vendor/uplot) over the JSON the server puts in a
// <script type="application/json"> block beside each SVG chart. Without this file (or uPlot) the
// server's SVG stays: every chart works without JavaScript.
//
// Markup: an element with `data-chart` (optional `data-height`) holding `.chart-fallback` and the
// JSON block; charts inside one `[data-chart-group]` share one toolbar (x axis, log y, smoothing).
// Hover shows step, value and run in the legend; drag zooms x, double-click resets.
// Also reads out the dot under the pointer of a server-drawn scatter (`[data-scatter]`).
(function () {
  "use strict";
  var FONT = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  var LABEL_FONT = "600 12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  var X_LABELS = { step: "Step", wall: "Wall time", relative: "Relative time" };
  var groupCount = 0;

  // The table cells' format (Python's "%.6g"): what the readout shows must match the tables.
  function g6(v) {
    if (v == null || !isFinite(v)) return "—";
    if (v === 0) return "0";
    var e = Math.floor(Math.log10(Math.abs(v)));
    if (e < -4 || e >= 6) {
      return v.toExponential(5).replace(/\.?0+e/, "e").replace(/e([+-])(\d)$/, "e$10$2");
    }
    var s = v.toPrecision(6);
    if (s.indexOf(".") >= 0 && s.indexOf("e") < 0) s = s.replace(/0+$/, "").replace(/\.$/, "");
    return s;
  }

  // Short tick labels (core.charts.format_number): 0.1235, 12.5k, 1.2e-5.
  function short(v) {
    if (v == null) return "";  // log axes leave some splits unlabelled
    if (v === 0) return "0";
    var a = Math.abs(v);
    if (a >= 1e6 || a < 1e-3) return v.toExponential(2).replace("e+", "e");
    if (a >= 1e4) return +(v / 1e3).toPrecision(4) + "k";
    return String(+v.toPrecision(4));
  }

  function duration(seconds) {
    if (seconds == null) return "—";
    var s = Math.round(seconds);
    if (Math.abs(s) < 60) return s + "s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + "m " + (s % 60) + "s";
    return Math.floor(m / 60) + "h " + (m % 60) + "m";
  }

  function niceStep(span, count) {
    var raw = span / Math.max(count - 1, 1);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var steps = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < steps.length; i++) if (steps[i] * mag >= raw) return steps[i] * mag;
    return 10 * mag;
  }

  // Linear y range ending on ticks: no curve rises above the top tick; 0 is a tick when in range.
  // The range and the ticks share one step (kept in `axis`), so the top tick is the range's end.
  function linearY(height) {
    var axis = { count: Math.max(3, Math.min(7, Math.round((height - 60) / 40))), step: null };
    axis.range = function (u, min, max) {
      if (min == null || max == null) return [0, 1];
      if (min === max) {
        var pad = Math.abs(min) * 0.1 || 1;
        min -= pad;
        max += pad;
      }
      axis.step = niceStep(max - min, axis.count);
      return [Math.floor(min / axis.step + 1e-9) * axis.step, Math.ceil(max / axis.step - 1e-9) * axis.step];
    };
    axis.splits = function (u, axisIdx, min, max) {
      var step = axis.step || niceStep(max - min, axis.count);
      var out = [];
      for (var v = Math.ceil(min / step - 1e-9) * step; v <= max + step * 1e-9 && out.length < 50; v += step) {
        out.push(Math.abs(v) < step * 1e-9 ? 0 : +v.toPrecision(12));
      }
      return out;
    };
    return axis;
  }

  // The y axis as wide as its longest tick label (uPlot's documented sizing pattern).
  function axisSize(u, values, axisIdx, cycleNum) {
    var axis = u.axes[axisIdx];
    if (cycleNum > 1) return axis._size;
    var size = axis.ticks.size + axis.gap;
    var longest = (values || []).reduce(function (a, v) { return v.length > a.length ? v : a; }, "");
    if (longest) {
      u.ctx.font = axis.font[0];
      size += u.ctx.measureText(longest).width / devicePixelRatio;
    }
    return Math.ceil(size);
  }

  // MLflow's (TensorBoard's) debiased exponential moving average; `weight` 0 means raw values.
  function ema(values, weight) {
    if (!weight) return values;
    var last = 0, n = 0;
    return values.map(function (v) {
      if (v == null) return null;
      last = last * weight + (1 - weight) * v;
      n += 1;
      return last / (1 - Math.pow(weight, n));
    });
  }

  function xValues(series, mode) {
    if (mode === "step") return series.step;
    var origin = series.start || series.time[0];
    return series.time.map(function (t) {
      if (t == null) return null;
      return mode === "wall" ? t / 1000 : (t - origin) / 1000;
    });
  }

  function lineData(payload, state) {
    var tables = payload.series.map(function (s) {
      var xs = xValues(s, state.x), ys = ema(s.value, state.smooth);
      var pairs = [];
      for (var i = 0; i < xs.length; i++) {
        var y = ys[i];
        if (xs[i] == null) continue;
        if (state.log && !(y > 0)) y = null;
        pairs.push([xs[i], y]);
      }
      pairs.sort(function (a, b) { return a[0] - b[0]; });
      return [pairs.map(function (p) { return p[0]; }), pairs.map(function (p) { return p[1]; })];
    });
    return tables.length === 1 ? tables[0] : uPlot.join(tables);
  }

  function lineOptions(el, payload, state, width, height) {
    var xFormat = state.x === "step" ? function (v) { return String(+v.toPrecision(12)); }
      : state.x === "relative" ? duration
      : function (v) { return new Date(v * 1000).toLocaleString(); };
    var many = payload.series.some(function (s) { return s.step.length <= 60; });
    var y = linearY(height);
    return {
      width: width,
      height: height,
      scales: {
        x: { time: state.x === "wall" },
        y: state.log ? { distr: 3, log: 10 } : { range: y.range },
      },
      axes: [
        {
          label: X_LABELS[state.x] + (state.x === "relative" ? " (since the run started)" : ""),
          font: FONT, labelFont: LABEL_FONT, labelSize: 20, size: 34,
          values: state.x === "wall" ? undefined : function (u, splits) {
            return splits.map(state.x === "relative" ? duration : short);
          },
        },
        {
          label: payload.y_label, font: FONT, labelFont: LABEL_FONT, labelSize: 20, size: axisSize,
          splits: state.log ? undefined : y.splits,
          values: function (u, splits) { return splits.map(short); },
        },
      ],
      series: [{ label: X_LABELS[state.x], value: function (u, v) { return v == null ? "—" : xFormat(v); } }].concat(
        payload.series.map(function (s) {
          return {
            label: s.name, stroke: s.color, width: 1.6, spanGaps: true,
            points: { show: many, size: 5 },
            value: function (u, v) { return g6(v); },
          };
        })
      ),
      // One cursor for the group: hovering a step reads every chart of the page at that step.
      cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 7 }, sync: { key: state.syncKey } },
      legend: { live: true },
      hooks: {
        setScale: [function (u, key) {
          if (key !== "x") return;
          el.setAttribute("data-x-min", u.scales.x.min);
          el.setAttribute("data-x-max", u.scales.x.max);
        }],
      },
    };
  }

  function mount(el, group) {
    var block = el.querySelector('script[type="application/json"]');
    if (!block || el.hasAttribute("data-chart-ready")) return;
    var payload = JSON.parse(block.textContent);
    if (!payload || payload.kind !== "line") return;
    el.setAttribute("data-chart-ready", "");
    var fallback = el.querySelector(".chart-fallback");
    var plot = document.createElement("div");
    plot.className = "chart-plot";
    el.appendChild(plot);
    var height = parseInt(el.getAttribute("data-height") || "230", 10);
    var chart = null;

    function width() {
      return Math.max(200, plot.clientWidth || el.clientWidth);
    }

    // Log y needs positive values: a chart with none stays linear (and says so in its title).
    var positive = payload.series.some(function (s) { return s.value.some(function (v) { return v > 0; }); });

    function draw() {
      var state = { x: group.state.x, log: group.state.log && positive, smooth: group.state.smooth, syncKey: group.state.syncKey };
      el.title = group.state.log && !positive ? "No positive values: shown on a linear scale" : "";
      if (chart) chart.destroy();
      chart = new uPlot(lineOptions(el, payload, state, width(), height), lineData(payload, state), plot);
      el._uplot = chart;
      el.setAttribute("data-x-mode", state.x);
      el.setAttribute("data-y-log", state.log ? "1" : "0");
    }

    if (fallback) fallback.hidden = true;
    draw();
    group.charts.push({
      redraw: draw,
      smooth: function () {
        chart.setData(lineData(payload, { x: group.state.x, log: group.state.log && positive, smooth: group.state.smooth }));
      },
    });
    if (window.ResizeObserver) {
      var last = plot.clientWidth;
      new ResizeObserver(function () {
        if (chart && plot.clientWidth && plot.clientWidth !== last) {
          last = plot.clientWidth;
          chart.setSize({ width: width(), height: height });
        }
      }).observe(plot);
    }
  }

  function control(labelText, input) {
    var label = document.createElement("label");
    label.className = "check";
    label.appendChild(document.createTextNode(labelText + " "));
    label.appendChild(input);
    return label;
  }

  // One toolbar per group: x axis, log y, smoothing; each change redraws the group's charts.
  function toolbar(container, group, hasTime) {
    var bar = document.createElement("div");
    bar.className = "chart-tools";
    var x = document.createElement("select");
    x.name = "chart-x";
    ["step", "wall", "relative"].forEach(function (mode) {
      if (mode !== "step" && !hasTime) return;
      var option = document.createElement("option");
      option.value = mode;
      option.textContent = X_LABELS[mode];
      x.appendChild(option);
    });
    var log = document.createElement("input");
    log.type = "checkbox";
    log.name = "chart-log";
    var smooth = document.createElement("input");
    smooth.type = "range";
    smooth.name = "chart-smoothing";
    smooth.min = "0";
    smooth.max = "0.99";
    smooth.step = "0.01";
    smooth.value = "0";
    var smoothValue = document.createElement("output");
    smoothValue.textContent = "0";
    bar.appendChild(control("X axis", x));
    var logLabel = document.createElement("label");
    logLabel.className = "check";
    logLabel.appendChild(log);
    logLabel.appendChild(document.createTextNode(" Log scale (y)"));
    bar.appendChild(logLabel);
    var smoothLabel = control("Smoothing", smooth);
    smoothLabel.appendChild(smoothValue);
    bar.appendChild(smoothLabel);
    var hint = document.createElement("span");
    hint.className = "hint";
    hint.textContent = "Drag to zoom, double-click to reset.";
    bar.appendChild(hint);
    function redraw() { group.charts.forEach(function (c) { c.redraw(); }); }
    x.addEventListener("change", function () { group.state.x = x.value; redraw(); });
    log.addEventListener("change", function () { group.state.log = log.checked; redraw(); });
    smooth.addEventListener("input", function () {
      group.state.smooth = parseFloat(smooth.value);
      smoothValue.textContent = smooth.value;
      group.charts.forEach(function (c) { c.smooth(); });
    });
    // Above a grid of cards (not a cell of it); inside a single chart's own box.
    if (container.classList.contains("charts")) container.parentNode.insertBefore(bar, container);
    else container.insertBefore(bar, container.firstChild);
    group.bar = bar;
  }

  function init(root) {
    if (typeof uPlot === "undefined" || !root.querySelectorAll) return;
    var charts = Array.prototype.slice.call(root.querySelectorAll("[data-chart]:not([data-chart-ready])"));
    if (root.matches && root.matches("[data-chart]:not([data-chart-ready])")) charts.unshift(root);
    var groups = new Map();
    charts.forEach(function (el) {
      var container = el.closest("[data-chart-group]") || el;
      var group = groups.get(container) || container._chartGroup;
      if (!group) {
        group = { state: { x: "step", log: false, smooth: 0, syncKey: "charts-" + (++groupCount) }, charts: [], container: container, hasTime: false };
        container._chartGroup = group;
      }
      groups.set(container, group);
      var block = el.querySelector('script[type="application/json"]');
      if (block && /"time": \[\d/.test(block.textContent)) group.hasTime = true;
    });
    groups.forEach(function (group, container) {
      if (!group.bar) toolbar(container, group, group.hasTime);
    });
    charts.forEach(function (el) { mount(el, (el.closest("[data-chart-group]") || el)._chartGroup); });
  }

  // The runs table's scatter (server SVG): the dot under the pointer, read out beneath the chart.
  document.addEventListener("mouseover", function (event) {
    var dot = event.target.closest && event.target.closest("[data-scatter] circle");
    if (!dot) return;
    var readout = dot.closest("[data-scatter]").querySelector(".chart-readout");
    var title = dot.querySelector("title");
    if (readout && title) readout.textContent = title.textContent;
  });

  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (event) { init(event.detail.elt); });
})();
