/* ncsn-edu live figure "mixing" (chapter 7, the paper's Figure 3): plain and annealed Langevin with
 * exact scores, side by side from the same starts, on a two-mode mixture whose weight the reader
 * sets. Settings (ncsn_edu.figures.live.mixing_figure): mixture (two components), heavy (index of the mode
 * whose weight the slider sets), lim, n, seed, step_size, n_steps (plain), sigmas, eps,
 * n_steps_each, convention (the annealed scores: "code" or "perturbed"; the step is the paper's). */
(function (global) {
  "use strict";
  var L = global.NCSNLive;

  /** Standard normal CDF (Abramowitz and Stegun 7.1.26 for erf; absolute error below 1.5e-7). */
  function ndtr(x) {
    var z = Math.abs(x) / Math.SQRT2, t = 1 / (1 + 0.3275911 * z);
    var y = 1 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t *
      Math.exp(-z * z);
    return x >= 0 ? 0.5 * (1 + y) : 0.5 * (1 - y);
  }
  L.ndtr = ndtr;

  /** The mass that level sigma's density puts nearer to mean `heavy` than to the other mean
   * (annealing_theory.equilibrium_side_fraction): for two isotropic components, the side of the
   * bisecting line; component k has std sqrt(var_k) and lies at signed distance d_k from the line. */
  function sideFraction(mix, heavy, sigma, convention) {
    var a = mix.means[heavy], b = mix.means[1 - heavy], v = mix.variances(sigma, convention);
    var nx = a[0] - b[0], ny = a[1] - b[1], nn = Math.sqrt(nx * nx + ny * ny);
    var cx = (a[0] + b[0]) / 2, cy = (a[1] + b[1]) / 2, f = 0;
    for (var k = 0; k < 2; k++) {
      var d = ((mix.means[k][0] - cx) * nx + (mix.means[k][1] - cy) * ny) / nn;
      f += mix.weights[k] * ndtr(d / Math.sqrt(v[k]));
    }
    return f;
  }
  L.sideFraction = sideFraction;

  L.figures.mixing = function (ui, cfg) {
    var base = new L.Mixture(cfg.mixture), heavy = cfg.heavy, lim = cfg.lim;
    if (base.K !== 2) throw new Error("the mixing figure needs a two-component mixture");
    var n = cfg.n, sigmas = cfg.sigmas, seed = cfg.seed, mix = base, clicked = null;
    var starts = new Float64Array(2 * n), xp = new Float64Array(2 * n), xa = new Float64Array(2 * n), s = new Float64Array(2 * n);
    var rngStart = new L.Rng(seed), rngP = new L.Rng(seed + 1), rngA = new L.Rng(seed + 2), tp = 0, run = null;
    var traceP = [], traceA = [];

    var row = L.el("div", {"class": "ncsn-live-row"}, ui);
    var cP = L.canvas(row, 360, 360, "plain Langevin, exact score of p");
    var cA = L.canvas(row, 360, 360, "annealed Langevin (Algorithm 1), exact annealed scores");
    var vP = new L.View(cP, lim), vA = new L.View(cA, lim);
    var row2 = L.el("div", {"class": "ncsn-live-row"}, ui);
    var modeName = "(" + base.means[heavy].join(", ") + ")";
    var cT = L.canvas(row2, 360, 240, "fraction of chains nearest to " + modeName + " against the step (both samplers)");
    var side = L.el("div", {"class": "ncsn-live-side"}, row2);
    var wCtl = L.slider(side, {label: "weight of " + modeName, name: "weight", min: 0.02,
      max: 0.98, step: "any", value: base.weights[heavy], format: function (v) { return v.toFixed(3); },
      onchange: function () { setWeight(); restart(); }});
    var tCtl = L.slider(side, {label: "plain steps T", name: "n_steps", log: true, min: 10, max: cfg.steps_max,
      value: cfg.n_steps, round: function (v) { return Math.round(L.round2(v)); },
      format: function (v) { return String(Math.round(v)); }, onchange: restart});
    var convCtl = L.select(side, "annealed scores", [["code: N(\u03bc\u2096, \u03c3\u1d62\u00b2I)", "code"],
      ["perturbed: N(\u03bc\u2096, (1+\u03c3\u1d62\u00b2)I)", "perturbed"]], cfg.convention,
      function () { restart(); });
    var anim = L.animator(ui, tick);
    var buttons = L.el("div", {"class": "ncsn-live-buttons"}, side);
    L.runButton(buttons, anim);
    L.button(buttons, "Reset", function () { clicked = null; restart(); });
    L.el("p", {"class": "ncsn-live-hint"}, side, "Click either plot to start both samplers' " + n +
      " chains at one point.");
    var stats = L.el("pre", {"class": "ncsn-live-stats", "aria-live": "polite"}, ui);

    function setWeight() {
      var w = [0, 0];
      w[heavy] = wCtl.get(); w[1 - heavy] = 1 - wCtl.get();
      mix = base.withWeights(w);
    }
    function background(view) {
      view.clear();
      view.density(mix, 0, 100, 1.6, 0.5);  // square root: the light mode shows
      var c = view.ctx;  // the line of equal distance to the two means: "nearest mode" is the side of it
      var a = mix.means[0], b = mix.means[1], mx2 = (a[0] + b[0]) / 2, my2 = (a[1] + b[1]) / 2, dx = -(b[1] - a[1]),
        dy = b[0] - a[0], len = 3 * lim / Math.sqrt(dx * dx + dy * dy);
      c.save(); c.beginPath(); c.rect(view.left, view.top, view.size, view.size); c.clip();
      c.setLineDash([4, 4]); c.strokeStyle = "#888"; c.beginPath();
      c.moveTo(view.px(mx2 - dx * len), view.py(my2 - dy * len)); c.lineTo(view.px(mx2 + dx * len), view.py(my2 + dy * len));
      c.stroke(); c.restore();
      view.axes();
      view.keep();
    }
    function annealedScore(x, m, out, level, sigma) { return mix.score(x, m, out, sigma, convCtl.get()); }
    function restart() {
      rngStart.reset(); rngP.reset(); rngA.reset(); tp = 0; traceP = []; traceA = [];
      if (clicked) L.pointStarts(clicked, n, starts); else L.uniformStarts(rngStart, n, lim, starts);
      xp.set(starts); xa.set(starts);
      run = new L.AnnealedRun({sigmas: sigmas, eps: cfg.eps, nStepsEach: cfg.n_steps_each, convention: "paper",
        x: xa, n: n, rng: rngA, scoreAt: annealedScore});
      background(vP); background(vA);
      record(); draw();
      anim.start();
    }
    function frac(x) { return mix.modeFractions(x, n)[heavy]; }
    function record() { traceP.push([tp, frac(xp)]); traceA.push([run.t, frac(xa)]); }
    function advance(k) {
      var T = Math.round(tCtl.get()), eps = cfg.step_size;
      for (var j = 0; j < k; j++) {
        var moved = false;
        if (tp < T) { mix.score(xp, n, s); L.langevinStep(xp, n, s, eps, rngP); tp += 1; moved = true; }
        if (run.t < run.total) { run.advance(1); moved = true; }
        if (!moved) return true;
        if ((tp % 10 === 0) || (run.t % 10 === 0)) record();
      }
      return tp >= T && run.t >= run.total;
    }
    function chart() {
      var c = cT.getContext("2d"), W = cT.width, H = cT.height, l = 54, r = 20, t = 10, b = 34;
      var T = Math.max(Math.round(tCtl.get()), run.total), w = wCtl.get();
      function X(step) { return l + (W - l - r) * step / T; }
      function Y(f) { return t + (H - t - b) * (1 - f); }
      c.fillStyle = "#fff"; c.fillRect(0, 0, W, H);
      c.strokeStyle = "#333"; c.strokeRect(l + 0.5, t + 0.5, W - l - r, H - t - b);
      c.fillStyle = "#222"; c.font = "11px sans-serif"; c.textAlign = "right"; c.textBaseline = "middle";
      [0, 0.25, 0.5, 0.75, 1].forEach(function (f) { c.fillText(f.toFixed(2), l - 4, Y(f)); });
      c.textAlign = "center"; c.textBaseline = "top";
      [0, 0.5, 1].forEach(function (q) { c.fillText(String(Math.round(q * T)), X(q * T), H - b + 4); });
      c.fillText("step", l + (W - l - r) / 2, H - 16);
      c.save(); c.translate(4, t + (H - t - b) / 2); c.rotate(-Math.PI / 2); c.fillText("fraction at " + modeName, 0, 0);
      c.restore();
      c.setLineDash([5, 4]); c.strokeStyle = "#000"; c.beginPath(); c.moveTo(X(0), Y(w)); c.lineTo(X(T), Y(w)); c.stroke();
      c.setLineDash([3, 2]); c.strokeStyle = "rgb(44,160,44)"; c.lineWidth = 2; c.beginPath();  // each level's equilibrium
      for (var i = 0; i < sigmas.length; i++) {
        var e = sideFraction(mix, heavy, sigmas[i], convCtl.get());
        c.moveTo(X(i * cfg.n_steps_each), Y(e)); c.lineTo(X((i + 1) * cfg.n_steps_each), Y(e));
      }
      c.stroke(); c.setLineDash([]); c.lineWidth = 1;
      [[traceP, "rgb(214,39,40)"], [traceA, "rgb(31,119,180)"]].forEach(function (tr) {
        c.strokeStyle = tr[1]; c.lineWidth = 1.5; c.beginPath();
        tr[0].forEach(function (p, j) { if (j) c.lineTo(X(p[0]), Y(p[1])); else c.moveTo(X(p[0]), Y(p[1])); });
        c.stroke(); c.lineWidth = 1;
      });
      c.textAlign = "left"; c.font = "11px sans-serif";
      c.fillStyle = "rgb(214,39,40)"; c.fillText("plain", l + 6, t + 4);
      c.fillStyle = "rgb(31,119,180)"; c.fillText("annealed", l + 46, t + 4);
      c.fillStyle = "rgb(44,160,44)"; c.fillText("level equilibrium", l + 110, t + 4);
      c.fillStyle = "#000"; c.fillText("weight", l + 214, t + 4);
    }
    function summary() {
      var fp = frac(xp), fa = frac(xa), w = wCtl.get(), se = function (f) { return Math.sqrt(f * (1 - f) / n); };
      var lev = run.level(), sig = sigmas[lev], eq = sideFraction(mix, heavy, sig, convCtl.get());
      return {plain: fp, annealed: fa, weight: w, level: lev + 1, sigma: sig, equilibrium: eq,
        text: "weight of " + modeName + " " + w.toFixed(3) + "   (" + n + " chains each, same starts)\n" +
          "plain Langevin    step " + tp + " of " + Math.round(tCtl.get()) + ":  fraction " + L.fmt(fp) + " \u00b1 " +
          L.fmt(se(fp)) + "\n" +
          "annealed Langevin step " + run.t + " of " + run.total + " (level " + (lev + 1) + ", \u03c3 = " + sig.toPrecision(3) +
          "):  fraction " + L.fmt(fa) + " \u00b1 " + L.fmt(se(fa)) + "   this level's equilibrium " + L.fmt(eq)};
    }
    function draw() {
      vP.points([{pts: xp, n: n, color: [214, 39, 40], size: 2}]);
      vA.points([{pts: xa, n: n, color: [31, 119, 180], size: 2}]);
      chart();
      stats.textContent = summary().text;
    }
    function tick(budget) {
      var t0 = performance.now(), done = false;
      while (!done && performance.now() - t0 < budget) done = advance(5);
      draw();
      return !done;
    }
    function startAt(p) { clicked = p; restart(); }
    L.onPoint(vP, cP, startAt);
    L.onPoint(vA, cA, startAt);
    setWeight();
    restart();
    return {
      /** Run k more steps of both samplers now (for tests and the curious: root.figure.advance(1000)). */
      advance: function (k) { var d = advance(k); draw(); return d; },
      state: function () {
        var sm = summary(), pp = [], pa = [], i;
        for (i = 0; i < n; i++) { pp.push([xp[2 * i], xp[2 * i + 1]]); pa.push([xa[2 * i], xa[2 * i + 1]]); }
        return {kind: "mixing", weight: sm.weight, n_steps: Math.round(tCtl.get()), step_size: cfg.step_size,
          sigmas: sigmas, eps: cfg.eps, n_steps_each: cfg.n_steps_each, convention: convCtl.get(), seed: seed,
          start: clicked ? clicked : "uniform", t_plain: tp, t_annealed: run.t, fraction_plain: sm.plain,
          fraction_annealed: sm.annealed, level: sm.level, equilibrium: sm.equilibrium, points_plain: pp,
          points_annealed: pa};
      }
    };
  };
})(typeof window !== "undefined" ? window : this);
