// locusta's HTML report: draws the charts with uPlot from the JSON blob in
// #report-data, fills in local times, and records in <body
// data-charts="N" data-charts-drawn="M"> how many charts exist and how
// many drew data points (the browser test reads it).
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);

  document.querySelectorAll("[data-epoch]").forEach(function (el) {
    var d = new Date(Number(el.getAttribute("data-epoch")) * 1000);
    el.textContent = "(local: " + d.toString() + ")";
  });

  var charts = [];
  var drawn = new Set();

  function hasPoints(u) {
    for (var i = 1; i < u.data.length; i++) {
      var ys = u.data[i];
      for (var j = 0; j < ys.length; j++) {
        if (ys[j] != null) return true;
      }
    }
    return false;
  }

  // Drawn: the canvas exists with a size and holds colored pixels. Axes
  // and grid are gray; every series stroke has a color, so a colored
  // pixel is a drawn series.
  function painted(u) {
    var c = u.root.querySelector("canvas");
    if (!c || c.width === 0 || c.height === 0) return false;
    var px = u.ctx.getImageData(0, 0, c.width, c.height).data;
    for (var i = 0; i < px.length; i += 4) {
      var hi = Math.max(px[i], px[i + 1], px[i + 2]);
      var lo = Math.min(px[i], px[i + 1], px[i + 2]);
      if (px[i + 3] > 0 && hi - lo > 40) return true;
    }
    return false;
  }

  function mark() {
    document.body.setAttribute("data-charts", String(charts.length));
    document.body.setAttribute("data-charts-drawn", String(drawn.size));
  }

  function onDraw(u) {
    if (hasPoints(u) && painted(u)) drawn.add(u);
    mark();
  }

  function width(el) {
    return Math.max(320, Math.floor(el.getBoundingClientRect().width) - 4 || 800);
  }

  function chart(parent, title, series, scales, axes, values, height, xSeries) {
    // Sized to its own box: a full row for the history, a grid cell for
    // the spectra.
    xSeries = xSeries || {};
    var box = document.createElement("div");
    box.className = "chart";
    parent.appendChild(box);
    var opts = {
      title: title,
      width: width(box),
      height: height || 260,
      scales: scales,
      series: [xSeries].concat(series),
      axes: axes,
      hooks: { draw: [onDraw] },
    };
    charts.push(new uPlot(opts, values, box));
    mark();
  }

  function line(label, color, unit) {
    return {
      label: label,
      stroke: color,
      width: 1.5,
      spanGaps: false,
      value: function (u, v) { return v == null ? "--" : v + (unit || ""); },
    };
  }

  var h = data.history;
  var hist = document.getElementById("history-charts");
  if (h.t.length === 0) {
    var p = document.createElement("p");
    p.className = "empty";
    p.textContent = "No per-second history was recorded.";
    hist.appendChild(p);
  } else {
    chart(hist, "Requests per second",
      [line("requests/s", "#2a9d3a"), line("failures/s", "#d62728")],
      { x: { time: true } }, undefined, [h.t, h.rps, h.fps]);
    var latency = [line("p50", "#1f77b4", " ms"), line("p95", "#ff7f0e", " ms"), line("p99", "#9467bd", " ms")];
    var latencyData = [h.t, h.p50, h.p95, h.p99];
    // Open-model runs: the corrected p99 (from intended starts) too.
    if (h.cp99) {
      latency.push(line("corrected p99", "#8c564b", " ms"));
      latencyData.push(h.cp99);
    }
    chart(hist, "Response times (ms)", latency, { x: { time: true } }, undefined, latencyData);
    chart(hist, "Users",
      [line("users", "#17becf")],
      { x: { time: true } }, undefined, [h.t, h.users]);
  }

  // x = 1/(1-q): 1 -> 0%, 10 -> 90%, 100 -> 99%, 1000 -> 99.9% ...
  function pctLabel(x, extra) {
    if (x <= 1) return "0%";
    var digits = Math.max(0, Math.round(Math.log10(x)) - 2 + (extra || 0));
    return (100 - 100 / x).toFixed(digits) + "%";
  }

  function decades(u, axisIdx, min, max) {
    var out = [];
    for (var x = 1; x <= max * 1.0001; x *= 10) {
      if (x >= min / 1.0001) out.push(x);
    }
    return out;
  }

  var spec = document.getElementById("spectrum-charts");
  data.spectra.forEach(function (s) {
    var xmax = Math.max(10, s.x[s.x.length - 1]);
    chart(spec, s.name,
      [{
        label: "latency",
        stroke: "#1f77b4",
        width: 1.5,
        points: { show: s.x.length < 3 },
        value: function (u, v) { return v == null ? "--" : v + " ms"; },
      }],
      {
        x: { time: false, distr: 3, log: 10, range: function () { return [1, xmax]; } },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.05 : 1]; } },
      },
      [
        {
          splits: decades,
          values: function (u, splits) { return splits.map(function (x) { return pctLabel(x); }); },
          label: "percentile",
        },
        { label: "ms" },
      ],
      [s.x, s.y], 240,
      { label: "percentile", value: function (u, v) { return v == null ? "--" : pctLabel(v, 2); } });
  });
  mark();
})();
