/* ncsn-edu live figure "mixing" (chapter 7, the paper's Figure 3): plain and annealed Langevin with
 * exact scores, side by side from the same starts, on a two-mode mixture whose weight the reader
 * sets. Settings (ncsn_edu.figures.live.mixing_figure): mixture (two components), heavy (index of the mode
 * whose weight the slider sets), lim, n, seed, step_size, n_steps (plain), sigmas, eps,
 * n_steps_each, convention (the annealed scores: "code" or "perturbed"; the step is the paper's). */
(function (global) {
  "use strict";
  var L = global.NCSNLive;

  var sideFraction = L.sideFraction;  // core.js: each level's equilibrium split

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
      var eq = sigmas.map(function (sg) { return sideFraction(mix, heavy, sg, convCtl.get()); });
      L.fractionChart(cT, {total: Math.max(Math.round(tCtl.get()), run.total), weight: wCtl.get(), mode: modeName,
        traces: [{points: traceP, color: "rgb(214,39,40)", name: "plain"},
                 {points: traceA, color: "rgb(31,119,180)", name: "annealed"}],
        equilibrium: eq, stepsEach: cfg.n_steps_each});
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
