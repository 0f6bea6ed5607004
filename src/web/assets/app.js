// locusta's web page: polls Locust's JSON API (`stats/requests`) once a
// second and shows it (header figures, stats table, charts, failures,
// exceptions, workers); the forms and buttons post to Locust's endpoints
// (`swarm`, `stop`, `stats/reset`). Plain JS, no build step; uPlot (loaded
// before this file) draws the charts. Every URL is relative, so the page
// works under `--web-base-path` and behind a reverse proxy.
(function () {
  "use strict";

  // Opened as `/base` (no slash), relative URLs would resolve beside the
  // base instead of below it: make the document URL end in "/" first, so
  // fetches, form posts and download links all resolve below it.
  if (!location.pathname.endsWith("/")) {
    history.replaceState(null, "", location.pathname + "/" + location.search + location.hash);
  }

  const $ = (id) => document.getElementById(id);
  const config = JSON.parse($("page-config").textContent);
  const POLL_MS = 1000;
  const MAX_POINTS = 7200; // two hours of chart history at one point a second
  const ACTIVE = ["spawning", "running", "stopping", "cleanup"];

  let state = "ready";
  let showStart = true; // the start form: before the first run, or after "New test"
  let showEdit = false;
  let lastRate = config.spawn_rate;
  let sort = { key: null, dir: 1 }; // stats table order; null: the API's order
  let activeTab = "stats";
  let lastReport = null; // the last stats/requests answer, for re-sorting

  // ---- messages -------------------------------------------------------

  // One line for errors; `source` lets a good poll clear its own error
  // without hiding an action's.
  let messageSource = null;
  function showMessage(text, source) {
    $("message").textContent = text;
    $("message").hidden = false;
    messageSource = source;
  }
  function clearMessage(source) {
    if (source === undefined || messageSource === source) {
      $("message").hidden = true;
      messageSource = null;
    }
  }

  // ---- posting to the API ----------------------------------------------

  // POST a form (url-encoded, as Locust's own page does). Resolves with the
  // parsed JSON (or text, e.g. "ok"); rejects with the server's message on
  // an HTTP error (a 400 names the bad field) or a `"success": false`.
  async function post(path, form) {
    const body = form ? new URLSearchParams(new FormData(form)) : undefined;
    const resp = await fetch(path, { method: "POST", body });
    const text = await resp.text();
    let answer = text;
    try { answer = JSON.parse(text); } catch (e) { /* plain text */ }
    if (!resp.ok || (answer && answer.success === false)) {
      const why = (answer && answer.message) || text || `${resp.status} ${resp.statusText}`;
      throw new Error(`${path}: ${why}`);
    }
    return answer;
  }

  function act(promise) {
    promise.then(() => { clearMessage("action"); poll.now(); })
      .catch((e) => showMessage(e.message, "action"));
  }

  $("start-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    lastRate = Number($("start-rate").value);
    act(post("swarm", ev.target).then(() => { showStart = false; charts.clear(); }));
  });
  $("edit-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    lastRate = Number($("edit-rate").value);
    act(post("swarm", ev.target).then(() => { showEdit = false; }));
  });
  $("new-button").addEventListener("click", () => { showStart = true; showEdit = false; layout(); });
  $("edit-button").addEventListener("click", () => {
    $("edit-users").value = $("users").textContent;
    $("edit-rate").value = lastRate;
    showEdit = true;
    layout();
  });
  $("edit-cancel").addEventListener("click", () => { showEdit = false; layout(); });
  $("stop-button").addEventListener("click", () => act(post("stop")));
  $("reset-button").addEventListener("click", () => act(post("stats/reset")));

  // ---- layout: which panels and buttons the state allows ----------------

  function layout() {
    document.body.dataset.state = state;
    $("state").textContent = state;
    const active = ACTIVE.includes(state);
    $("start").hidden = active || !(showStart || state === "ready");
    $("edit").hidden = !(showEdit && active);
    document.querySelectorAll("[data-show]").forEach((el) => {
      el.hidden = !el.dataset.show.split(" ").includes(state);
    });
  }

  // ---- tabs ---------------------------------------------------------------

  document.querySelectorAll(".tabs button").forEach((button) => {
    button.addEventListener("click", () => selectTab(button.dataset.tab));
  });
  function selectTab(name) {
    activeTab = name;
    document.querySelectorAll(".tabs button").forEach((b) => {
      b.classList.toggle("active", b.dataset.tab === name);
    });
    document.querySelectorAll("section.tab").forEach((s) => {
      s.hidden = s.id !== `tab-${name}`;
    });
    if (name === "charts") charts.show();
    if (name === "exceptions") loadExceptions();
  }

  // ---- tables -------------------------------------------------------------

  function fmt(value, digits) {
    if (value === null || value === undefined) return "";
    if (typeof value !== "number") return String(value);
    const scale = 10 ** digits;
    return String(Math.round(value * scale) / scale);
  }

  function cell(tr, text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  }

  // Replace a table body's rows: `columns` maps a row to its cells'
  // [text, class] pairs.
  function fill(tableId, rows, columns, rowClass) {
    const tbody = document.querySelector(`#${tableId} tbody`);
    const fresh = document.createElement("tbody");
    rows.forEach((row) => {
      const tr = document.createElement("tr");
      if (rowClass) tr.className = rowClass(row);
      columns(row).forEach(([text, cls]) => cell(tr, text, cls));
      fresh.appendChild(tr);
    });
    tbody.replaceWith(fresh);
  }

  const STAT_COLUMNS = [
    ["method", null], ["name", null], ["num_requests", 0], ["num_failures", 0],
    ["median_response_time", 2], ["response_time_percentile_0.95", 2],
    ["response_time_percentile_0.99", 2], ["avg_response_time", 2],
    ["min_response_time", 2], ["max_response_time", 2], ["avg_content_length", 0],
    ["current_rps", 1], ["current_fail_per_sec", 1],
  ];

  function compare(a, b) {
    const x = a[sort.key], y = b[sort.key];
    if (typeof x === "number" && typeof y === "number") return (x - y) * sort.dir;
    return String(x ?? "").localeCompare(String(y ?? "")) * sort.dir;
  }

  // The last row is the Aggregated one (Locust's order): it stays last
  // whatever the sort.
  function renderStats(stats) {
    const rows = stats.slice(0, -1);
    const total = stats.slice(-1);
    if (sort.key) rows.sort(compare);
    fill("stats-table", rows.concat(total), (r) => STAT_COLUMNS.map(([key, digits]) => [
      digits === null ? (r[key] ?? "") : fmt(r[key], digits), digits === null ? null : "num",
    ]), (r) => (r === total[0] ? "aggregated" : ""));
  }

  document.querySelectorAll("#stats-table th").forEach((th) => {
    th.addEventListener("click", () => {
      const key = th.dataset.key;
      // A new column starts with the largest numbers (or A-Z) first.
      sort = sort.key === key ? { key, dir: -sort.dir } : { key, dir: th.classList.contains("num") ? -1 : 1 };
      document.querySelectorAll("#stats-table th").forEach((h) => h.classList.remove("sorted-asc", "sorted-desc"));
      th.classList.add(sort.dir > 0 ? "sorted-asc" : "sorted-desc");
      if (lastReport) renderStats(lastReport.stats);
    });
  });

  function renderFailures(errors) {
    const rows = errors.slice().sort((a, b) => b.occurrences - a.occurrences);
    fill("failures-table", rows, (e) => [
      [String(e.occurrences), "num"], [e.method ?? ""], [e.name ?? ""], [e.error ?? ""],
    ]);
  }

  function renderWorkers(workers) {
    fill("workers-table", workers, (w) => [
      [w.id], [w.state], [String(w.user_count), "num"], [fmt(w.cpu_usage, 1), "num"],
      [typeof w.memory_usage === "number" ? fmt(w.memory_usage / 1e6, 1) : "", "num"],
    ]);
  }

  async function loadExceptions() {
    try {
      const resp = await fetch("exceptions", { cache: "no-store" });
      if (!resp.ok) throw new Error(`${resp.status} ${resp.statusText}`);
      const rows = (await resp.json()).exceptions;
      const tbody = document.createElement("tbody");
      rows.forEach((x) => {
        const tr = document.createElement("tr");
        cell(tr, String(x.count), "num");
        cell(tr, x.msg);
        const pre = document.createElement("pre");
        pre.textContent = x.traceback;
        cell(tr, "").appendChild(pre);
        cell(tr, x.nodes);
        tbody.appendChild(tr);
      });
      document.querySelector("#exceptions-table tbody").replaceWith(tbody);
    } catch (e) {
      showMessage(`cannot read exceptions: ${e.message}`, "poll");
    }
  }

  // ---- charts (uPlot) -----------------------------------------------------

  // Points gathered from each poll while a run is on: time (s), then one
  // array per series. Each chart reads the arrays it names.
  const charts = (function () {
    const series = { time: [], rps: [], fails: [], p50: [], p95: [], users: [] };
    const specs = [
      { id: "chart-rps", title: "Total requests per second", unit: "per second",
        lines: [["rps", "RPS", "#2e7d32"], ["fails", "Failures/s", "#c62828"]] },
      { id: "chart-latency", title: "Response times (ms)", unit: "ms",
        lines: [["p50", "Median", "#1565c0"], ["p95", "95th percentile", "#ef6c00"]] },
      { id: "chart-users", title: "Number of users", unit: "users",
        lines: [["users", "Users", "#6a1b9a"]] },
    ];
    let plots = null; // made when the tab first shows: uPlot needs a width

    const data = (spec) => [series.time].concat(spec.lines.map(([key]) => series[key]));
    const width = (el) => Math.max(el.clientWidth - 20, 300);

    function make() {
      plots = specs.map((spec) => {
        const el = $(spec.id);
        el.dataset.color = spec.lines[0][2]; // the browser test looks for it
        return new uPlot({
          title: spec.title, width: width(el), height: 240,
          series: [{}].concat(spec.lines.map(([, label, color]) => ({ label, stroke: color, width: 2 }))),
          axes: [{}, { label: spec.unit }],
        }, data(spec), el);
      });
    }

    function redraw() {
      if (!plots) return;
      plots.forEach((plot, i) => plot.setData(data(specs[i])));
      specs.forEach((spec) => { $(spec.id).dataset.points = String(series.time.length); });
    }

    window.addEventListener("resize", () => {
      if (plots && activeTab === "charts") {
        plots.forEach((plot, i) => plot.setSize({ width: width($(specs[i].id)), height: 240 }));
      }
    });

    return {
      add(report) {
        const p = report.current_response_time_percentiles || {};
        series.time.push(Date.now() / 1000);
        series.rps.push(report.current_rps ?? 0);
        series.fails.push(report.current_fail_per_sec ?? 0);
        series.p50.push(p["response_time_percentile_0.5"] ?? null);
        series.p95.push(p["response_time_percentile_0.95"] ?? null);
        series.users.push(report.user_count ?? 0);
        if (series.time.length > MAX_POINTS) Object.values(series).forEach((a) => a.shift());
        if (activeTab === "charts") redraw();
      },
      clear() {
        Object.values(series).forEach((a) => { a.length = 0; });
        redraw();
      },
      show() {
        if (!plots) make();
        plots.forEach((plot, i) => plot.setSize({ width: width($(specs[i].id)), height: 240 }));
        redraw();
      },
    };
  })();

  // ---- polling --------------------------------------------------------------

  function render(report) {
    lastReport = report;
    state = report.state;
    $("users").textContent = String(report.user_count);
    $("rps").textContent = fmt(report.current_rps ?? report.total_rps, 1);
    $("fail-ratio").textContent = `${fmt((report.fail_ratio || 0) * 100, 1)}%`;
    renderStats(report.stats);
    renderFailures(report.errors);
    const onMaster = Array.isArray(report.workers);
    $("workers-tab").hidden = !onMaster;
    $("workers-figure").hidden = !onMaster;
    if (onMaster) {
      $("worker-count").textContent = String(report.worker_count ?? report.workers.length);
      renderWorkers(report.workers);
    }
    if (ACTIVE.includes(state)) charts.add(report);
    if (activeTab === "exceptions") loadExceptions();
    layout();
  }

  // One poll in flight at a time; `poll.now()` after an action polls at
  // once (or right after the poll in flight).
  const poll = (function () {
    let timer = null;
    let busy = false;
    let again = false;
    async function run() {
      clearTimeout(timer);
      if (busy) { again = true; return; }
      busy = true;
      try {
        const resp = await fetch("stats/requests", { cache: "no-store" });
        if (!resp.ok) throw new Error(`${resp.status} ${resp.statusText}`);
        render(await resp.json());
        clearMessage("poll");
      } catch (e) {
        showMessage(`cannot read stats/requests: ${e.message}`, "poll");
      }
      busy = false;
      timer = setTimeout(run, again ? 0 : POLL_MS);
      again = false;
    }
    return { start: run, now: run };
  })();

  $("host").textContent = config.host;
  $("start-users").value = config.user_count;
  $("start-rate").value = config.spawn_rate;
  $("start-host").value = config.host;
  $("start-run-time").value = config.run_time;
  layout();
  poll.start();
})();
