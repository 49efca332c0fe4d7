// The Activity page's chart: generation tokens/s per model over time, drawn with uPlot from the
// data-chart JSON the server renders into #activity-chart (redrawn after each htmx refresh).
(function () {
  "use strict";
  var chart = null;
  function draw() {
    var el = document.getElementById("activity-chart");
    if (!el || typeof window.uPlot !== "function") return;
    var d;
    try { d = JSON.parse(el.getAttribute("data-chart") || "{}"); } catch (e) { return; }
    if (chart) { chart.destroy(); chart = null; }
    el.textContent = "";
    if (!d.points || !d.points.length) { el.textContent = "No generation speeds in this range yet."; return; }
    var xs = [];
    d.points.forEach(function (p) { xs.push(p[0]); });
    var series = [{}];
    var data = [xs];
    var palette = ["#2563eb", "#16a34a", "#dc2626", "#9333ea", "#ea580c", "#0891b2", "#ca8a04"];
    d.models.forEach(function (m, i) {
      data.push(d.points.map(function (p) { return p[1] === m ? p[2] : null; }));
      series.push({ label: m, stroke: palette[i % palette.length], spanGaps: true, points: { show: true } });
    });
    // The x axis spans the chosen range, ending now (as the monitoring charts do): one point no
    // longer stretches it over years.
    var spanSec = Number(el.getAttribute("data-hours") || 24) * 3600;
    // From our own points, not uPlot's dataMax: for a single point uPlot hands the range
    // function an already widened max (years ahead), which is what stretched the axis.
    var lastX = xs[xs.length - 1] || 0;
    var xRange = function () {
      var end = Math.max(Date.now() / 1000, lastX);
      return [end - spanSec, end];
    };
    chart = new window.uPlot({
      width: Math.max(300, el.clientWidth || 600),
      height: 220,
      series: series,
      scales: { x: { time: true, range: xRange } },
      axes: [{}, { label: "tok/s" }],
      hooks: {
        // What the time axis spans (epoch seconds): the browser tests check it.
        setScale: [function (u, key) {
          if (key === "x" && u.scales.x.min != null) el.setAttribute("data-x-range", Math.round(u.scales.x.min) + "," + Math.round(u.scales.x.max));
        }],
      },
    }, data, el);
  }
  document.addEventListener("DOMContentLoaded", draw);
  document.body && document.body.addEventListener("htmx:afterSettle", function (e) {
    if (e.target && e.target.id === "activity-live") draw();
  });
  if (document.readyState !== "loading") draw();
})();
