/* ncsn-edu live figure "ssm_error" (chapter 6): the sliced-score-matching network of Figure 2 at
 * each of its saved training steps, running in the page, against the exact score of the mixture.
 * Settings (ncsn_edu.figures.live.ssm_error_figure): mixture, lim, n (the error grid, as
 * low_density_experiment.score_error_stats), arrows (arrow grid), low_fraction, steps, networks
 * (one exported network per step), package (score_error_stats' numbers per step), initial, bands,
 * vmin, vmax, dtype.
 * Left: the density, the exact score (black) and the learned score (red). Right: log10 of the
 * error ||s_theta - grad log p|| on the grid, the region p >= low_fraction * max p outlined in white.
 * Click either plot to read the error there. */
(function (global) {
  "use strict";
  var L = global.NCSNLive;

  /** score_error_stats' grid: linspace(-lim, lim, n) in both coordinates, point j * n + i at (t_i, t_j). */
  function gridLinspace(lim, n) {
    var pts = new Float64Array(2 * n * n), i, j;
    for (j = 0; j < n; j++) for (i = 0; i < n; i++) {
      pts[2 * (j * n + i)] = -lim + 2 * lim * i / (n - 1);
      pts[2 * (j * n + i) + 1] = -lim + 2 * lim * j / (n - 1);
    }
    return pts;
  }

  /** score_error_stats' numbers from the errors `err` and densities `p` at the grid points. */
  function errorStats(err, p, lowFraction) {
    var m = err.length, pmax = 0, i, sp = 0, spe = 0, nh = 0, sh = 0, nl = 0, sl = 0;
    for (i = 0; i < m; i++) if (p[i] > pmax) pmax = p[i];
    for (i = 0; i < m; i++) {
      sp += p[i]; spe += p[i] * err[i];
      if (p[i] >= lowFraction * pmax) { nh += 1; sh += err[i]; } else { nl += 1; sl += err[i]; }
    }
    var w = spe / sp;
    return {weighted_error: w, high_density_error: nh ? sh / nh : NaN, low_density_error: nl ? sl / nl : NaN,
      ratio: nl ? sl / nl / w : NaN, low_share: nl / m, p_max: pmax};
  }

  /** The error split by bands edges[k] <= |x1 + x2| < edges[k+1]: relative error
   * sqrt(sum ||s - s*||^2 / sum ||s*||^2), mean cosine and mean error in each band. */
  function bandStats(pts, s, exact, edges) {
    var rows = [], k, i, m = pts.length / 2;
    for (k = 0; k + 1 < edges.length; k++) rows.push({lo: edges[k], hi: edges[k + 1], n: 0, d2: 0, t2: 0, cos: 0, e: 0});
    for (i = 0; i < m; i++) {
      var u = Math.abs(pts[2 * i] + pts[2 * i + 1]);
      for (k = 0; k < rows.length; k++) if (u >= rows[k].lo && u < rows[k].hi) break;
      if (k === rows.length) continue;
      var r = rows[k], sx = s[2 * i], sy = s[2 * i + 1], tx = exact[2 * i], ty = exact[2 * i + 1];
      var dx = sx - tx, dy = sy - ty, d2 = dx * dx + dy * dy, ns = Math.sqrt(sx * sx + sy * sy), nt = Math.sqrt(tx * tx + ty * ty);
      r.n += 1; r.d2 += d2; r.t2 += tx * tx + ty * ty; r.e += Math.sqrt(d2);
      r.cos += (sx * tx + sy * ty) / Math.max(ns * nt, 1e-8);  // torch.cosine_similarity's eps
    }
    return rows.map(function (r) {
      return {lo: r.lo, hi: r.hi, n: r.n, relative_error: r.n ? Math.sqrt(r.d2 / r.t2) : NaN,
        mean_cosine: r.n ? r.cos / r.n : NaN, mean_error: r.n ? r.e / r.n : NaN};
    });
  }
  L.ssmError = {gridLinspace: gridLinspace, errorStats: errorStats, bandStats: bandStats};

  /** Values at the linspace grid (row j = y index, from the bottom) as cells centred on the grid
   * points, clipped to the plot area, as matplotlib's pcolormesh(shading="auto") draws them. */
  function heatLinspace(view, values, n, name, vmin, vmax, rows) {
    var off = global.document.createElement("canvas"), i, j, k;
    off.width = n; off.height = n;
    var oc = off.getContext("2d"), img = oc.createImageData(n, n);
    for (j = 0; j < n; j++) for (i = 0; i < n; i++) {
      var col = rows !== undefined && j >= rows ? [225, 225, 225] : L.cmap(name, (values[j * n + i] - vmin) / (vmax - vmin));
      k = 4 * ((n - 1 - j) * n + i);
      img.data[k] = col[0]; img.data[k + 1] = col[1]; img.data[k + 2] = col[2]; img.data[k + 3] = 255;
    }
    oc.putImageData(img, 0, 0);
    var c = view.ctx, h = 2 * view.lim / (n - 1), x0 = view.px(-view.lim - h / 2), y0 = view.py(view.lim + h / 2);
    c.save();
    c.beginPath(); c.rect(view.left, view.top, view.size, view.size); c.clip();
    c.imageSmoothingEnabled = false;
    c.drawImage(off, x0, y0, view.px(view.lim + h / 2) - x0, view.py(-view.lim - h / 2) - y0);
    c.restore();
  }

  /** The boundary of the grid cells where mask is true (a staircase, exactly the grid's region). */
  function outline(view, mask, n, color, width) {
    var c = view.ctx, h = 2 * view.lim / (n - 1), i, j;
    function t(i) { return -view.lim + h * i; }
    c.save();
    c.beginPath(); c.rect(view.left, view.top, view.size, view.size); c.clip();
    c.strokeStyle = color; c.lineWidth = width;
    c.beginPath();
    for (j = 0; j < n; j++) for (i = 0; i < n; i++) {
      var a = mask[j * n + i];
      if (i + 1 < n && a !== mask[j * n + i + 1]) {
        var x = view.px(t(i) + h / 2);
        c.moveTo(x, view.py(t(j) - h / 2)); c.lineTo(x, view.py(t(j) + h / 2));
      }
      if (j + 1 < n && a !== mask[(j + 1) * n + i]) {
        var y = view.py(t(j) + h / 2);
        c.moveTo(view.px(t(i) - h / 2), y); c.lineTo(view.px(t(i) + h / 2), y);
      }
    }
    c.stroke();
    c.restore();
  }

  function title(view, text) {
    var c = view.ctx;
    c.fillStyle = "#222"; c.font = "bold 13px sans-serif"; c.textAlign = "center"; c.textBaseline = "alphabetic";
    c.fillText(text, view.left + view.size / 2, view.top - 6);
  }

  function pad(s, w) { s = String(s); while (s.length < w) s = " " + s; return s; }

  L.figures.ssm_error = function (ui, cfg) {
    var mix = new L.Mixture(cfg.mixture), lim = cfg.lim, N = cfg.n, M = N * N, steps = cfg.steps;
    var nets = cfg.networks.map(function (spec) { return new L.Network(spec); });
    var edges = cfg.bands, vmin = cfg.vmin, vmax = cfg.vmax, nA = cfg.arrows;
    var pts = gridLinspace(lim, N), exact = mix.score(pts, M), p = new Float64Array(M), i;
    for (i = 0; i < M; i++) p[i] = Math.exp(mix.logProb(pts[2 * i], pts[2 * i + 1]));
    var pmax = 0;
    for (i = 0; i < M; i++) if (p[i] > pmax) pmax = p[i];
    var apts = gridLinspace(lim, nA), aExact = mix.score(apts, nA * nA);
    var cache = {}, shown = -1, clicked = null, rowsPerCall = 2;

    var panels = L.el("div", {"class": "ncsn-live-row"}, ui);
    var c1 = L.canvas(panels, 440, 440, "density (shading), exact score \u2207log p (black), learned score s\u03b8 (red)");
    var c2 = L.canvas(panels, 500, 440, "log\u2081\u2080 \u2016s\u03b8 \u2212 \u2207log p\u2016 on the " + N + " \u00d7 " + N +
      " grid; white: p \u2265 threshold \u00d7 peak; dashed: |x\u2081 + x\u2082| = 1, 2, 4, 8");
    var v1 = new L.View(c1, lim, {top: 22, right: 12}), v2 = new L.View(c2, lim, {top: 22, right: 72});
    var side = L.el("div", {"class": "ncsn-live-side"}, panels);
    var stepCtl = L.slider(side, {label: "training step", name: "step", min: 0, max: steps.length - 1, step: 1,
      value: cfg.initial, format: function (v) { return String(steps[Math.round(v)]); }, onchange: function () { request(); }});
    var lowCtl = L.slider(side, {label: "low density below", name: "low_fraction", log: true, min: 1e-6, max: 0.1,
      value: cfg.low_fraction, round: L.round2, format: function (v) { return v.toPrecision(2) + " \u00d7 peak"; },
      onchange: function () { drawMap(); report(); pointReadout(); }});
    L.el("p", {"class": "ncsn-live-hint"}, side, "Drag the step through the " + steps.length + " saved training steps. " +
      "Click either plot to read the error at a point.");
    var stats = L.el("pre", {"class": "ncsn-live-stats", "aria-live": "polite"}, side);
    var pointBox = L.el("pre", {"class": "ncsn-live-stats"}, side);

    function index() { return Math.round(stepCtl.get()); }
    function lowFraction() { return lowCtl.get(); }
    function entry(k) {
      if (!cache[k]) cache[k] = {s: new Float64Array(2 * M), err: new Float64Array(M), done: 0, ms: 0};
      return cache[k];
    }
    /** Compute grid rows of step k's learned score for about `budget` ms; true when the map is complete. */
    function compute(k, budget) {
      var e = entry(k), t0 = performance.now(), net = nets[k];
      while (e.done < N && performance.now() - t0 < budget) {
        var j0 = e.done, j1 = Math.min(N, j0 + rowsPerCall), a = 2 * j0 * N, b = 2 * j1 * N;
        net.forward(pts.subarray(a, b), (j1 - j0) * N, e.s.subarray(a, b));
        for (var q = j0 * N; q < j1 * N; q++) {
          var dx = e.s[2 * q] - exact[2 * q], dy = e.s[2 * q + 1] - exact[2 * q + 1];
          e.err[q] = Math.sqrt(dx * dx + dy * dy);
        }
        e.done = j1;
      }
      e.ms += performance.now() - t0;
      if (e.done >= N && !e.bands) e.bands = bandStats(pts, e.s, exact, edges);
      return e.done >= N;
    }
    function drawFields(k) {
      v1.clear();
      var lp = new Float64Array(M);
      for (var q = 0; q < M; q++) lp[q] = p[q] / pmax;
      heatLinspace(v1, lp, N, "Blues", 0, 1);
      var s = nets[k].forward(apts, nA * nA), big = 0, q2;
      for (q2 = 0; q2 < nA * nA; q2++) {
        big = Math.max(big, Math.log1p(Math.hypot(s[2 * q2], s[2 * q2 + 1])), Math.log1p(Math.hypot(aExact[2 * q2], aExact[2 * q2 + 1])));
      }
      var cell = v1.size / (nA - 1) * 0.9;
      v1.arrowsAt(apts, aExact, nA * nA, big, cell, "rgba(0,0,0,0.8)", 1);
      v1.arrowsAt(apts, s, nA * nA, big, cell, "rgba(214,39,40,0.9)", 1.2);
      v1.axes();
      title(v1, "step " + steps[k] + ": exact score (black), learned (red)");
      v1.marker(clicked);
    }
    function drawMap() {
      var k = shown, e = cache[k];
      v2.clear();
      if (e) {  // rows not computed yet are grey
        var lg = new Float64Array(M), mask = new Uint8Array(M), lf = lowFraction();
        for (var q = 0; q < M; q++) { lg[q] = Math.log10(e.err[q]); mask[q] = p[q] >= lf * pmax ? 1 : 0; }
        heatLinspace(v2, lg, N, "magma", vmin, vmax, e.done);
        outline(v2, mask, N, "#fff", 1.6);
        var c = v2.ctx;
        c.save();
        c.beginPath(); c.rect(v2.left, v2.top, v2.size, v2.size); c.clip();
        c.setLineDash([4, 4]); c.strokeStyle = "rgba(180,230,255,0.7)"; c.lineWidth = 1;
        c.beginPath();
        edges.forEach(function (u) {
          if (!(u > 0) || u >= 2 * lim) return;
          [u, -u].forEach(function (b) {  // the line x1 + x2 = b across the square
            c.moveTo(v2.px(b - lim), v2.py(lim)); c.lineTo(v2.px(b + lim), v2.py(-lim));
          });
        });
        c.stroke();
        c.restore();
      }
      v2.axes();
      var ticks = [];
      for (var tck = Math.ceil(vmin); tck <= vmax; tck++) ticks.push(tck);
      v2.colourBar(v2.left + v2.size + 10, v2.top, 12, v2.size, "magma", vmin, vmax,
        "log\u2081\u2080 \u2016s\u03b8 \u2212 \u2207log p\u2016", ticks);
      title(v2, "step " + steps[k] + ": log\u2081\u2080 error" + (e && e.done >= N ? "" : " (computing)"));
      v2.marker(clicked);
    }
    function liveStats() {
      var e = cache[shown];
      if (!e || e.done < N) return null;
      var st = errorStats(e.err, p, lowFraction());
      st.bands = e.bands; st.ms = e.ms;
      return st;
    }
    function atPackageThreshold() { return Math.abs(lowFraction() / cfg.low_fraction - 1) < 1e-6; }
    function report() {
      var k = shown, e = cache[k], lines = [], pk = cfg.package[k];
      lines.push("training step " + steps[k] + " (" + (k + 1) + " of " + steps.length + " saved)");
      lines.push("the network's " + cfg.dtype + " weights, in this page");
      if (!e || e.done < N) {
        lines.push("computing the error map: " + Math.round(100 * (e ? e.done : 0) / N) + "%");
        stats.textContent = lines.join("\n");
        return;
      }
      var st = liveStats(), same = atPackageThreshold();
      function row(name, a, b) { return (name + "                      ").slice(0, 21) + pad(L.fmt(a), 8) + pad(b, 10); }
      lines.push("error map: " + M + " points in " + Math.round(e.ms) + " ms");
      lines.push("                         live   package");
      lines.push(row("weighted error", st.weighted_error, L.fmt(pk.weighted_error)));
      lines.push(row("high-density error", st.high_density_error, same ? L.fmt(pk.high_density_error) : "-"));
      lines.push(row("low-density error", st.low_density_error, same ? L.fmt(pk.low_density_error) : "-"));
      lines.push(row("ratio low / weighted", st.ratio, same ? L.fmt(pk.ratio) : "-"));
      if (!same) lines.push("(the package's split: p < " + cfg.low_fraction + " \u00d7 peak)");
      lines.push("low density: p < " + lowFraction().toPrecision(2) + " \u00d7 peak,");
      lines.push("  " + (100 * st.low_share).toFixed(1) + "% of the grid");
      lines.push("");
      lines.push("where the error lives, by |x\u2081 + x\u2082|:");
      lines.push("band    points rel.err    cos  mean err");
      st.bands.forEach(function (b) {
        lines.push(("[" + b.lo + ", " + b.hi + ")         ").slice(0, 7) + pad(b.n, 7) + pad(L.fmt(b.relative_error), 8) +
          pad(L.fmt(b.mean_cosine), 7) + pad(L.fmt(b.mean_error), 10));
      });
      stats.textContent = lines.join("\n");
    }
    function pointReadout() {
      if (!clicked) { pointBox.textContent = "click a plot to read the error at a point"; return null; }
      var x = Float64Array.from(clicked), s = nets[shown].forward(x, 1), t = mix.score(x, 1);
      var dx = s[0] - t[0], dy = s[1] - t[1], err = Math.hypot(dx, dy), ns = Math.hypot(s[0], s[1]), nt = Math.hypot(t[0], t[1]);
      var r = {x: clicked[0], y: clicked[1], learned: [s[0], s[1]], exact: [t[0], t[1]], error: err,
        relative_error: err / nt, cosine: (s[0] * t[0] + s[1] * t[1]) / Math.max(ns * nt, 1e-8),
        density_ratio: Math.exp(mix.logProb(clicked[0], clicked[1])) / pmax};
      pointBox.textContent = [
        "at x = (" + L.fmt(r.x, 2) + ", " + L.fmt(r.y, 2) + "), step " + steps[shown] + ":",
        "learned s\u03b8(x)  = (" + L.fmt(s[0]) + ", " + L.fmt(s[1]) + ")",
        "exact \u2207log p(x) = (" + L.fmt(t[0]) + ", " + L.fmt(t[1]) + ")",
        "error \u2016s\u03b8 \u2212 \u2207log p\u2016 = " + L.fmt(err),
        "relative error " + L.fmt(r.relative_error) + ", cosine " + L.fmt(r.cosine),
        "p(x) / peak = " + r.density_ratio.toExponential(2) +
          (r.density_ratio >= lowFraction() ? " (high density)" : " (low density)")
      ].join("\n");
      return r;
    }
    function tick(budget) {
      var k = index();
      if (k !== shown) { shown = k; drawFields(k); pointReadout(); }
      var done = compute(k, budget);
      drawMap();
      report();
      return !done;
    }
    var anim = L.animator(ui, tick);
    // the new step's fields and the first rows of its map are drawn at once, in the slider's own handler
    function request() { if (tick(8)) anim.start(); }
    function readAt(q) {
      clicked = q;
      if (shown >= 0) { drawFields(shown); drawMap(); }
      pointReadout();
    }
    L.onPoint(v1, c1, readAt);
    L.onPoint(v2, c2, readAt);
    shown = index(); drawFields(shown); drawMap(); report(); pointReadout();
    request();
    return {
      state: function () {
        var st = liveStats(), pt = clicked ? pointReadout() : null;
        return {kind: "ssm_error", step: steps[shown], step_index: shown, low_fraction: lowFraction(), dtype: cfg.dtype,
          computed: !!st, ms: st ? st.ms : null, live: st, package: cfg.package[shown], point: pt,
          points: clicked ? [clicked] : []};
      }
    };
  };
})(typeof window !== "undefined" ? window : this);
