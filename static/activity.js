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
    chart = new window.uPlot({ width: Math.max(300, el.clientWidth || 600), height: 220, series: series, axes: [{}, { label: "tok/s" }] }, data, el);
  }
  document.addEventListener("DOMContentLoaded", draw);
  document.body && document.body.addEventListener("htmx:afterSettle", function (e) {
    if (e.target && e.target.id === "activity-live") draw();
  });
  if (document.readyState !== "loading") draw();
})();
