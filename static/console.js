// Llama Async Proxy web console: live updates and the few things htmx does not do by itself.
// Plain script, no framework, no build step. Pages are complete without it (server-rendered);
// this file keeps them live:
//   - one WebSocket to /llamaproxws (plain JSON protocol: subscribe, metrics_update,
//     models_update, logs_update, requests_update, activity_update), reconnecting with backoff,
//     with a status indicator;
//   - each push becomes a DOM event on <body> (lap-metrics, lap-models, lap-logs, lap-requests,
//     lap-activity) that the htmx
//     fragments listen to (hx-trigger="lap-models from:body") and re-fetch themselves;
//   - while the socket is down, the same events fire every few seconds, so pages stay fresh;
//   - the log tail, the uPlot charts and the playground's token stream.
(function () {
  "use strict";

  var body = document.body;
  var page = body.getAttribute("data-page") || "";
  var topics = (body.getAttribute("data-topics") || "").split(/\s+/).filter(Boolean);

  // ---- notice bar -------------------------------------------------------------------------
  var noticeEl = document.getElementById("notice");
  var noticeTimer = null;
  function notice(text, tone) {
    if (!noticeEl) return;
    noticeEl.textContent = text;
    noticeEl.setAttribute("data-tone", tone || "error");
    noticeEl.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(function () { noticeEl.hidden = true; }, 10000);
  }
  function textOf(html) {
    try {
      var doc = new DOMParser().parseFromString(html, "text/html");
      return (doc.body.textContent || "").replace(/\s+/g, " ").trim();
    } catch (e) {
      return "";
    }
  }
  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail.xhr;
    var msg = textOf(xhr.responseText || "").slice(0, 300);
    notice("Request failed (" + xhr.status + ")" + (msg ? ": " + msg : ""));
  });
  document.addEventListener("htmx:sendError", function () {
    notice("The proxy did not answer. Is it still running?");
  });

  // A form swapped back with errors: put the keyboard on the first field to fix (the swap
  // replaced the element that had focus, which would otherwise drop focus to <body>).
  document.addEventListener("htmx:load", function (evt) {
    var elt = evt.detail.elt;
    if (!elt || !elt.querySelector || elt.tagName !== "FORM") return;
    var bad = elt.querySelector('[aria-invalid="true"]');
    if (bad) bad.focus();
  });

  // ---- live events: coalesced so a burst of pushes costs one re-fetch ------------------------
  var pending = {};
  function emit(name, detail) {
    if (pending[name]) {
      pending[name].detail = detail;
      return;
    }
    pending[name] = { detail: detail };
    setTimeout(function () {
      var p = pending[name];
      delete pending[name];
      body.dispatchEvent(new CustomEvent(name, { detail: p.detail }));
    }, 150);
  }

  // ---- WebSocket --------------------------------------------------------------------------------
  var statusEl = document.getElementById("ws-status");
  if (statusEl) statusEl.hidden = false;
  var announced = "";
  function setStatus(state, label) {
    if (!statusEl) return;
    var announce = document.getElementById("ws-announce");
    var spoken = state === "live" ? "Live updates connected" : state === "offline" ? "Live updates disconnected, retrying" : "";
    if (announce && spoken && spoken !== announced) {
      announce.textContent = spoken;
      announced = spoken;
    }
    statusEl.setAttribute("data-state", state);
    var l = statusEl.querySelector(".label");
    if (l) l.textContent = label;
    statusEl.title = state === "live" ? "Live updates connected" : "Live updates disconnected: " + label;
  }

  var ws = null;
  var attempt = 0;
  var retryTimer = null;
  var fallbackTimer = null;

  function startFallback() {
    if (fallbackTimer || !topics.length) return;
    // The socket is down: refresh what this page shows over plain HTTP every 5 s instead.
    fallbackTimer = setInterval(function () {
      topics.forEach(function (t) { emit("lap-" + t, null); });
    }, 5000);
  }
  function stopFallback() {
    clearInterval(fallbackTimer);
    fallbackTimer = null;
  }

  function scheduleReconnect() {
    clearTimeout(retryTimer);
    // Exponential backoff with jitter: 1 s, 2 s, 4 s ... 30 s, so a restarted proxy is found
    // quickly and a dead one is not hammered by every open tab at once.
    var base = Math.min(30000, 1000 * Math.pow(2, attempt));
    var delay = Math.round(base * (0.5 + Math.random() * 0.5));
    attempt++;
    var until = Date.now() + delay;
    var tick = function () {
      var left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      setStatus("offline", "disconnected, retry in " + left + "s");
    };
    tick();
    var countdown = setInterval(tick, 1000);
    retryTimer = setTimeout(function () {
      clearInterval(countdown);
      connect();
    }, delay);
  }

  function send(obj) {
    if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj));
  }

  function connect() {
    clearTimeout(retryTimer);
    if (ws && (ws.readyState === 0 || ws.readyState === 1)) return;
    setStatus("connecting", "connecting…");
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/llamaproxws";
    var sock;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      scheduleReconnect();
      startFallback();
      return;
    }
    ws = sock;
    sock.onopen = function () {
      attempt = 0;
      stopFallback();
      setStatus("live", "live");
      topics.forEach(function (t) {
        send({ type: "subscribe", data: { type: t }, timestamp: Date.now() });
      });
      // Whatever changed between the page render (or the drop) and this subscription was never
      // pushed to us: refresh once. Cheap: the log tail asks only for lines after its last id.
      topics.forEach(function (t) { emit("lap-" + t, null); });
    };
    sock.onmessage = function (ev) {
      var msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (!msg || typeof msg.type !== "string") return;
      switch (msg.type) {
        case "metrics_update": emit("lap-metrics", msg.data); break;
        case "models_update": emit("lap-models", msg.data); break;
        case "logs_update": emit("lap-logs", msg.data); break;
        case "requests_update": emit("lap-requests", msg.data); break;
        case "activity_update": emit("lap-activity", msg.data); break;
        case "error":
          // A shutdown notice (reconnect: true) is followed by the close; the indicator says it.
          if (msg.data && msg.data.message && !msg.data.reconnect) notice("Live updates: " + msg.data.message);
          break;
      }
    };
    sock.onclose = function () {
      if (ws !== sock) return;
      ws = null;
      startFallback();
      scheduleReconnect();
    };
    // An error is always followed by close, which does the work.
    sock.onerror = function () {};
  }

  // The login page has no session yet: the socket would only be refused (and retried) there.
  if (body.getAttribute("data-socket") !== "off") {
    window.addEventListener("online", function () { attempt = 0; connect(); });
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible" && !ws) { attempt = 0; connect(); }
    });
    connect();
  } else if (statusEl) {
    statusEl.hidden = true;
  }

  // ---- models page ------------------------------------------------------------------------
  // Keep open "Settings" editors open across live refreshes of the table or of a loading row,
  // and don't refresh either under someone who is typing in it.
  var openEditors = [];
  var isRefresher = function (elt) {
    return elt && (elt.id === "models-table" || elt.id === "pg-model" || (elt.tagName === "TR" && elt.hasAttribute("data-model-id")));
  };
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!isRefresher(elt)) return;
    var a = document.activeElement;
    if (a && elt.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName)) evt.preventDefault();
    // (elt.contains(elt) is true: a focused model picker is not swapped while it may be open.)
  });
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var t = evt.detail.target;
    if (!t || !t.querySelectorAll) return;
    // A refresh asked for before someone started typing must not land under them either: it
    // would replace the field (and what was typed) and drop the hint request it started.
    var a = document.activeElement;
    if (isRefresher(evt.detail.elt) && a && t.contains(a) && /^(INPUT|TEXTAREA|SELECT)$/.test(a.tagName)) {
      evt.detail.shouldSwap = false;
      return;
    }
    openEditors = [];
    t.querySelectorAll("details.settings-editor[open]").forEach(function (d) {
      var row = d.closest("tr");
      if (row) openEditors.push(row.getAttribute("data-model-id"));
    });
  });
  document.addEventListener("htmx:afterSwap", function () {
    if (!openEditors.length) return;
    var ids = openEditors;
    openEditors = [];
    document.querySelectorAll("tr[data-model-id]").forEach(function (row) {
      if (ids.indexOf(row.getAttribute("data-model-id")) < 0) return;
      var d = row.querySelector("details.settings-editor");
      if (d) d.open = true;
    });
  });

  // A form answered with its own field errors: focus the first refused field, so the user lands
  // on it (and, focused, it holds back live refreshes of the table until they are done with it).
  document.addEventListener("htmx:afterSwap", function (evt) {
    var cfg = evt.detail && evt.detail.requestConfig;
    if (!cfg || cfg.verb !== "post" || !evt.target || !evt.target.querySelector) return;
    var bad = evt.target.querySelector('[aria-invalid="true"]');
    if (bad && typeof bad.focus === "function") bad.focus();
  });

  // The rows' queue badges (/ui/models/queue, fetched on each requests push): each goes into the
  // row that shows it. Not htmx's out-of-band swap: a model registered or removed since the table
  // was drawn has no row (or no badge) here, which htmx reports as an error; here it is skipped.
  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = evt.detail.elt;
    if (!elt || elt.id !== "queue-badges" || !evt.detail.successful) return;
    var doc = new DOMParser().parseFromString(evt.detail.xhr.responseText || "", "text/html");
    doc.querySelectorAll(".queue-badge[id]").forEach(function (fresh) {
      var old = document.getElementById(fresh.id);
      if (old) old.replaceWith(document.importNode(fresh, true));
    });
  });

  // Elapsed time of loads ticks every second between refreshes.
  function fmtDuration(s) {
    s = Math.max(0, Math.floor(s));
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
  }
  setInterval(function () {
    document.querySelectorAll("[data-elapsed-since]").forEach(function (el) {
      var t = Date.parse(el.getAttribute("data-elapsed-since"));
      if (!isNaN(t)) el.textContent = fmtDuration((Date.now() - t) / 1000);
    });
  }, 1000);

  // ---- log tail ---------------------------------------------------------------------------
  // New lines come from /ui/logs/lines?afterId=N (rendered <li>s for the current filter), fetched
  // on every logs_update push and every 2 s while the page is visible: the hub batches info
  // lines (up to 15 s, as the reference describes), a tail should feel immediate. While paused,
  // fetched lines are held back and counted, and shown on resume.
  var MAX_LINES = 2000;
  var paused = false;
  var held = "";
  var heldCount = 0;
  var tailBusy = false;
  var tailAgain = false;
  var pauseBtn = document.getElementById("log-pause");

  function logView() { return document.getElementById("log-view"); }

  function nearBottom(el) {
    return el.scrollHeight - el.scrollTop - el.clientHeight < 40;
  }

  function syncDownloadLink() {
    var v = logView();
    var a = document.getElementById("log-download");
    if (v && a) a.setAttribute("href", "/ui/logs/download" + (v.getAttribute("data-query") || ""));
  }

  function showLines(html) {
    var list = document.getElementById("log-lines");
    if (!html.trim() || !list) return;
    var stick = nearBottom(list);
    list.insertAdjacentHTML("beforeend", html);
    while (list.children.length > MAX_LINES) list.removeChild(list.firstElementChild);
    var empty = document.getElementById("log-empty");
    if (empty) empty.remove();
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function updatePauseLabel() {
    if (!pauseBtn) return;
    pauseBtn.textContent = paused ? (heldCount ? "Resume (" + heldCount + " new)" : "Resume") : "Pause";
    pauseBtn.setAttribute("aria-pressed", paused ? "true" : "false");
  }

  function fetchNewLines() {
    var view = logView();
    if (!view) return;
    if (tailBusy) { tailAgain = true; return; }
    tailBusy = true;
    var q = view.getAttribute("data-query") || "";
    var after = view.getAttribute("data-last-id") || "0";
    var url = "/ui/logs/lines" + (q ? q + "&" : "?") + "afterId=" + encodeURIComponent(after);
    fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (res) {
        if (!res.ok) throw new Error("HTTP " + res.status);
        var last = res.headers.get("X-Last-Id");
        return res.text().then(function (html) { return { html: html, last: last }; });
      })
      .then(function (r) {
        // The filter may have been changed (view swapped) while we waited: drop the answer.
        if (logView() !== view) return;
        if (paused) {
          held += r.html;
          heldCount += (r.html.match(/<li /g) || []).length;
          updatePauseLabel();
        } else {
          showLines(r.html);
        }
        if (r.last) view.setAttribute("data-last-id", r.last);
      })
      .catch(function () { /* the next push or tick tries again */ })
      .then(function () {
        tailBusy = false;
        if (tailAgain) { tailAgain = false; fetchNewLines(); }
      });
  }

  if (page === "logs") {
    var list0 = document.getElementById("log-lines");
    if (list0) list0.scrollTop = list0.scrollHeight;
    if (pauseBtn) {
      pauseBtn.hidden = false;
      pauseBtn.addEventListener("click", function () {
        paused = !paused;
        if (!paused) {
          showLines(held);
          held = "";
          heldCount = 0;
        }
        updatePauseLabel();
      });
    }
    body.addEventListener("lap-logs", fetchNewLines);
    setInterval(function () {
      if (document.visibilityState === "visible") fetchNewLines();
    }, 2000);
    // A filter change swaps in a new #log-view (outerHTML): lines held for the old filter no
    // longer apply; point Download at the new filter and show its newest lines.
    document.addEventListener("htmx:load", function (evt) {
      if (evt.detail.elt && evt.detail.elt.id === "log-view") {
        held = "";
        heldCount = 0;
        updatePauseLabel();
        syncDownloadLink();
        var l = document.getElementById("log-lines");
        if (l) l.scrollTop = l.scrollHeight;
      }
    });
  }

  // ---- charts (monitoring) ---------------------------------------------------------------------
  var charts = {};
  var chartData = null;

  function cssVar(name, fallback) {
    var v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  function avg(xs) {
    var v = xs.filter(function (x) { return typeof x === "number" && isFinite(x); });
    if (!v.length) return null;
    return v.reduce(function (a, b) { return a + b; }, 0) / v.length;
  }

  var CHART_SERIES = {
    cpu: [{ key: "cpu", label: "CPU %", color: "--c1" }],
    memory: [{ key: "memory", label: "Memory %", color: "--c2" }],
    gpu: [
      { key: "gpu", label: "GPU %", color: "--c3" },
      { key: "gpuMemory", label: "VRAM %", color: "--c4" },
    ],
    requests: [{ key: "requests", label: "Requests", color: "--c1", bars: true }],
    responseTime: [{ key: "responseTime", label: "ms", color: "--c2" }],
    tokensPerSecond: [{ key: "tokensPerSecond", label: "tok/s", color: "--c3" }],
  };

  function num(v) { return typeof v === "number" && isFinite(v) ? v : null; }

  function buildData(metrics) {
    var d = { t: [] };
    Object.keys(CHART_SERIES).forEach(function (id) {
      CHART_SERIES[id].forEach(function (s) { d[s.key] = []; });
    });
    metrics.forEach(function (m) {
      var t = Date.parse(m.timestamp);
      if (isNaN(t)) return;
      d.t.push(t / 1000);
      Object.keys(CHART_SERIES).forEach(function (id) {
        CHART_SERIES[id].forEach(function (s) { d[s.key].push(num(m[s.key])); });
      });
    });
    return d;
  }

  function drawCharts() {
    Object.keys(charts).forEach(function (k) { charts[k].destroy(); });
    charts = {};
    chartData = null;
    var holder = document.getElementById("history-data");
    if (!holder || typeof window.uPlot !== "function") return;
    var hist;
    try {
      hist = JSON.parse(holder.getAttribute("data-history") || "{}");
    } catch (e) {
      return;
    }
    chartData = buildData(hist.metrics || []);
    // The x axis always spans the chosen range (ending now), so one point or a gap does not
    // stretch the axis over years and hours without data show as what they are.
    var section = document.getElementById("charts");
    var spanSec = Number(section && section.getAttribute("data-hours") || 1) * 3600;
    // The end comes from our own newest point, not from uPlot's dataMax: for a single point
    // uPlot hands the range function a max it has already widened (years ahead), which ran the
    // axis to 2029 (the "8/27/29" under the first tick).
    var xRange = function (u) {
      var xs0 = u && u.data && u.data[0] && u.data[0].length ? u.data[0] : chartData ? chartData.t : [];
      var last = xs0.length ? xs0[xs0.length - 1] : 0;
      var end = Math.max(Date.now() / 1000, last || 0);
      return [end - spanSec, end];
    };
    var axis = cssVar("--muted", "#888");
    var grid = cssVar("--line", "rgba(128,128,128,.2)");
    Object.keys(CHART_SERIES).forEach(function (id) {
      var el = document.getElementById("chart-" + id);
      if (!el) return;
      var defs = CHART_SERIES[id];
      var opts = {
        width: Math.max(200, el.clientWidth),
        height: 170,
        legend: { show: true, live: true },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true, range: xRange }, y: { range: id === "cpu" || id === "memory" || id === "gpu" ? [0, 100] : undefined } },
        axes: [
          { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
          { stroke: axis, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 44 },
        ],
        series: [{}].concat(defs.map(function (s) {
          var color = cssVar(s.color, "#3b82f6");
          return {
            label: s.label,
            stroke: color,
            width: 1.5,
            fill: s.bars ? color + "55" : color + "22",
            paths: s.bars && window.uPlot.paths && window.uPlot.paths.bars ? window.uPlot.paths.bars({ size: [0.8, 12] }) : undefined,
            points: { show: false },
          };
        })),
      };
      // uPlot does not range an x scale that has no values (the `range` above is never asked),
      // and its time axis then showed a date decades off under the first tick. With no data,
      // two empty points at the ends of the chosen range give the axis its span.
      var empty = chartData.t.length === 0;
      var xs = empty ? xRange(null, null, null) : chartData.t;
      var data = [xs].concat(defs.map(function (s) { return empty ? [null, null] : chartData[s.key]; }));
      // What the time axis spans (epoch seconds), whenever uPlot sets it: the browser tests check it.
      opts.hooks = {
        // The time axis' tick labels as drawn (uPlot keeps them in axes[0]._values).
        draw: [function (u) { el.setAttribute("data-x-labels", String((u.axes[0]._values || []).join("|"))); }],
        setScale: [function (u, key) {
          if (key === "x" && u.scales.x.min != null) el.setAttribute("data-x-range", Math.round(u.scales.x.min) + "," + Math.round(u.scales.x.max));
        }],
      };
      charts[id] = new window.uPlot(opts, data, el);
      el.setAttribute("data-points", String(chartData.t.length));
    });
  }

  function appendLive(m) {
    // Live samples extend the 1-hour view only; coarser ranges are whole buckets from history.
    var section = document.getElementById("charts");
    if (!section || section.getAttribute("data-range") !== "1h" || !chartData || !m || !m.timestamp) return;
    var t = Date.parse(m.timestamp) / 1000;
    if (isNaN(t) || (chartData.t.length && t <= chartData.t[chartData.t.length - 1])) return;
    var gpus = m.gpu || [];
    var point = {
      cpu: m.cpu && num(m.cpu.usage),
      memory: m.memory && num(m.memory.usagePercent),
      gpu: avg(gpus.map(function (g) { return g.utilization; })),
      gpuMemory: avg(gpus.map(function (g) { return g.memory && g.memory.usagePercent; })),
      requests: null,
      responseTime: m.requests ? num(m.requests.averageResponseTime) : null,
      tokensPerSecond: null,
    };
    chartData.t.push(t);
    Object.keys(point).forEach(function (k) { chartData[k].push(point[k] === undefined ? null : point[k]); });
    // Keep one hour.
    while (chartData.t.length && chartData.t[0] < t - 3600) {
      chartData.t.shift();
      Object.keys(point).forEach(function (k) { chartData[k].shift(); });
    }
    Object.keys(charts).forEach(function (id) {
      var data = [chartData.t].concat(CHART_SERIES[id].map(function (s) { return chartData[s.key]; }));
      charts[id].setData(data);
      var el = document.getElementById("chart-" + id);
      if (el) el.setAttribute("data-points", String(chartData.t.length));
    });
  }

  if (page === "monitoring") {
    var drawWhenReady = function () {
      if (typeof window.uPlot === "function") drawCharts();
    };
    drawWhenReady();
    // htmx:load fires for content htmx has just inserted (the new #charts of a range switch);
    // swap events of an outerHTML swap fire on the old, detached node instead.
    document.addEventListener("htmx:load", function (evt) {
      if (evt.detail.elt && evt.detail.elt.id === "charts") drawCharts();
    });
    body.addEventListener("lap-metrics", function (evt) { appendLive(evt.detail); });
    var resizeTimer = null;
    window.addEventListener("resize", function () {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(function () {
        Object.keys(charts).forEach(function (id) {
          var el = document.getElementById("chart-" + id);
          if (el) charts[id].setSize({ width: Math.max(200, el.clientWidth), height: 170 });
        });
      }, 150);
    });
  }

  // ---- playground -----------------------------------------------------------------------------
  if (page === "playground") {
    var form = document.getElementById("chat-form");
    var transcript = document.getElementById("pg-transcript");
    var stopBtn = document.getElementById("pg-stop");
    var sendBtn = document.getElementById("pg-send");
    var history = [];
    var controller = null;

    var bubble = function (role, text) {
      var div = document.createElement("div");
      div.className = "chat-msg " + role;
      var who = document.createElement("div");
      who.className = "who";
      who.textContent = role === "user" ? "You" : role === "assistant" ? "Model" : "Error";
      var content = document.createElement("div");
      content.className = "content";
      content.textContent = text || "";
      div.appendChild(who);
      div.appendChild(content);
      transcript.appendChild(div);
      transcript.scrollTop = transcript.scrollHeight;
      return content;
    };
    var setStat = function (id, text) {
      var el = document.getElementById(id);
      if (el) el.textContent = text;
    };

    form.addEventListener("keydown", function (e) {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        form.requestSubmit();
      }
    });
    document.getElementById("pg-clear").addEventListener("click", function () {
      history = [];
      transcript.textContent = "";
      ["pg-ttft", "pg-tps", "pg-tokens"].forEach(function (id) { setStat(id, "–"); });
    });
    stopBtn.addEventListener("click", function () { if (controller) controller.abort(); });

    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (controller) return;
      var fd = new FormData(form);
      var model = String(fd.get("model") || "");
      var text = String(fd.get("message") || "").trim();
      if (!model || !text) return;
      var messages = [];
      var system = String(fd.get("system") || "").trim();
      if (system) messages.push({ role: "system", content: system });
      history.push({ role: "user", content: text });
      messages = messages.concat(history);
      bubble("user", text);
      form.querySelector("#pg-message").value = "";
      var out = bubble("assistant", "");
      out.parentNode.classList.add("streaming");
      var req = { model: model, messages: messages, stream: true, stream_options: { include_usage: true } };
      var temp = parseFloat(String(fd.get("temperature")));
      if (isFinite(temp)) req.temperature = temp;
      var max = parseInt(String(fd.get("max_tokens")), 10);
      if (isFinite(max) && max > 0) req.max_tokens = max;

      controller = new AbortController();
      sendBtn.disabled = true;
      stopBtn.disabled = false;
      ["pg-ttft", "pg-tps", "pg-tokens"].forEach(function (id) { setStat(id, "…"); });
      var t0 = performance.now();
      var tFirst = null;
      var chunks = 0;
      var usageTokens = null;
      var serverTps = null;
      var answer = "";

      var finish = function (err) {
        controller = null;
        sendBtn.disabled = false;
        stopBtn.disabled = true;
        out.parentNode.classList.remove("streaming");
        if (answer) history.push({ role: "assistant", content: answer });
        // No answer at all: drop the question from the context, so sending it again does not
        // carry it twice.
        else if (history.length && history[history.length - 1].role === "user") history.pop();
        if (err) {
          if (!answer) out.parentNode.remove();
          bubble("error", err);
        }
        var tEnd = performance.now();
        var tokens = usageTokens != null ? usageTokens : chunks;
        setStat("pg-ttft", tFirst != null ? Math.round(tFirst - t0) + " ms" : "–");
        setStat("pg-tokens", tokens ? String(tokens) : "–");
        var tps = serverTps != null ? serverTps : tFirst != null && tEnd > tFirst && tokens > 1 ? (tokens - 1) / ((tEnd - tFirst) / 1000) : null;
        setStat("pg-tps", tps != null ? tps.toFixed(1) : "–");
      };

      fetch("/v1/chat/completions", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(req),
        signal: controller.signal,
        credentials: "same-origin",
      })
        .then(function (res) {
          if (!res.ok || !res.body) {
            return res.text().then(function (t) {
              var msg = "HTTP " + res.status;
              try {
                var j = JSON.parse(t);
                msg = (j.error && (j.error.message || j.error)) || msg;
              } catch (e2) { /* not JSON */ }
              throw new Error(String(msg));
            });
          }
          var reader = res.body.getReader();
          var decoder = new TextDecoder();
          var buf = "";
          var handle = function (data) {
            if (data === "[DONE]") return;
            var j;
            try { j = JSON.parse(data); } catch (e3) { return; }
            if (j.error) throw new Error(j.error.message || "stream error");
            var c = j.choices && j.choices[0];
            var delta = c && c.delta && (c.delta.content || c.delta.reasoning_content);
            if (delta) {
              if (tFirst == null) {
                tFirst = performance.now();
                setStat("pg-ttft", Math.round(tFirst - t0) + " ms");
              }
              chunks++;
              answer += delta;
              out.textContent = answer;
              transcript.scrollTop = transcript.scrollHeight;
            }
            if (j.usage && typeof j.usage.completion_tokens === "number") usageTokens = j.usage.completion_tokens;
            if (j.timings && typeof j.timings.predicted_per_second === "number") serverTps = j.timings.predicted_per_second;
          };
          var pump = function () {
            return reader.read().then(function (r) {
              if (r.done) return;
              buf += decoder.decode(r.value, { stream: true });
              var idx;
              while ((idx = buf.search(/\r?\n\r?\n/)) >= 0) {
                var event = buf.slice(0, idx);
                buf = buf.slice(idx).replace(/^\r?\n\r?\n/, "");
                event.split(/\r?\n/).forEach(function (line) {
                  if (line.indexOf("data:") === 0) handle(line.slice(5).trim());
                });
              }
              return pump();
            });
          };
          return pump();
        })
        .then(function () { finish(null); })
        .catch(function (err) {
          finish(err && err.name === "AbortError" ? (answer ? null : "Stopped.") : (err && err.message) || "Request failed");
        });
    });
  }
})();
