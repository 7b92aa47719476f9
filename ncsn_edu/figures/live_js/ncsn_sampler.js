/* ncsn-edu live figure "ncsn_sampler" (chapter 9): annealed Langevin dynamics (Algorithm 1) in the
 * page, with the book's trained toy NCSN or with the exact perturbed scores. Controls: the score
 * (network or exact), L levels, T steps per level, eps and the step convention; click to start
 * the chains at a point; Reset replays the same chains. With exact scores any L gives L geometric
 * levels from sigma_1 to sigma_L; the level-conditioned network knows only its own levels, so L
 * picks L of them, spread evenly in log sigma (its first and last always among them). L = 1 means
 * the last level alone, sigma_L, for both scores: plain Langevin with step eps on q_sigma_L.
 * A chart follows the fraction of chains nearest to mode `heavy` against the step (core.js's
 * fractionChart, as chapter 7's figure), with each level's equilibrium for a two-mode mixture.
 * The package samples in float32: a chain that leaves float32's range becomes infinite there, and
 * then not a number. The page computes in float64, where such a chain could come back from 1e100;
 * it marks a chain beyond float32's largest value as not a number, so that it diverges here as it
 * does in the package (chapter 9's table: eps = 5 diverges).
 * Settings (ncsn_edu.figures.live.ncsn_sampler_figure): mixture, network, lim, n, eps, n_steps_each,
 * convention, seed, heavy (the mode whose fraction is printed), target (its weight). */
(function (global) {
  "use strict";
  var L = global.NCSNLive;

  /** L of the network's level indices, evenly spaced (first and last included). */
  L.levelSubset = function (nLevels, count) {
    count = Math.max(1, Math.min(nLevels, Math.round(count)));
    if (count === 1) return [nLevels - 1];
    var out = [];
    for (var j = 0; j < count; j++) out.push(Math.round(j * (nLevels - 1) / (count - 1)));
    return out;
  };

  /** The largest finite float32: beyond it the package's chains are infinite. */
  L.FLOAT32_MAX = 3.4028234663852886e38;
  /** Chains of x (n points) with a coordinate beyond float32's range become NaN (both coordinates). */
  L.loseOverflow = function (x, n) {
    for (var i = 0; i < n; i++) {
      if (!(Math.abs(x[2 * i]) <= L.FLOAT32_MAX && Math.abs(x[2 * i + 1]) <= L.FLOAT32_MAX)) {
        x[2 * i] = NaN; x[2 * i + 1] = NaN;
      }
    }
    return x;
  };

  L.figures.ncsn_sampler = function (ui, cfg) {
    var mix = new L.Mixture(cfg.mixture), net = new L.Network(cfg.network), trained = net.sigmas;
    var lim = cfg.lim, n = cfg.n, seed = cfg.seed, heavy = cfg.heavy, target = cfg.target;
    var rng = new L.Rng(seed), x = new Float64Array(2 * n), run = null, clicked = null, levels = [], sigmas = [];
    var shownLevel = -1, trace = [], every = 1, equilibrium = [];

    var row = L.el("div", {"class": "ncsn-live-row"}, ui);
    var canvas = L.canvas(row, 440, 440, "chains (red) over q\u03c3 of the current level, with its scores (arrows)");
    var view = new L.View(canvas, lim);
    var side = L.el("div", {"class": "ncsn-live-side"}, row);
    var row2 = L.el("div", {"class": "ncsn-live-row"}, ui);
    var modeName = "(" + mix.means[heavy].join(", ") + ")";
    var cT = L.canvas(row2, 440, 200, "fraction of chains nearest to " + modeName + " against the step");
    var scoreCtl = L.select(side, "scores", [["the trained network", "network"], ["exact \u2207log q\u03c3\u1d62", "exact"]],
      cfg.score, restart);
    var lCtl = L.slider(side, {label: "levels L", name: "n_levels", min: 1, max: cfg.max_levels, step: 1,
      value: trained.length, format: function (v) { return String(Math.round(v)); }, onchange: restart});
    var tCtl = L.slider(side, {label: "steps per level T", name: "n_steps_each", log: true, min: 1, max: 1000,
      value: cfg.n_steps_each, round: function (v) { return Math.max(1, Math.round(L.round2(v))); },
      format: function (v) { return String(Math.round(v)); }, onchange: restart});
    var eCtl = L.slider(side, {label: "step \u03b5", name: "eps", log: true, min: 1e-3, max: 10, value: cfg.eps,
      round: L.round2, format: function (v) { return v.toPrecision(2); }, onchange: restart});
    var cCtl = L.select(side, "step convention", [["paper: \u03b1\u1d62/2, \u221a\u03b1\u1d62", "paper"],
      ["official code: a\u1d62, \u221a(2a\u1d62)", "code"]], cfg.convention, restart);
    var anim = L.animator(ui, tick);
    var buttons = L.el("div", {"class": "ncsn-live-buttons"}, side);
    L.runButton(buttons, anim);
    L.button(buttons, "Reset", function () { clicked = null; restart(); });
    L.el("p", {"class": "ncsn-live-hint"}, side, "Click the plot to start all " + n + " chains at one point.");
    var stats = L.el("pre", {"class": "ncsn-live-stats", "aria-live": "polite"}, ui);

    function schedule() {
      var count = Math.round(lCtl.get());
      if (scoreCtl.get() === "network") {
        // the network knows only its own levels: the slider shows the L that is used
        if (count > trained.length) { count = trained.length; lCtl.set(count); }
        levels = L.levelSubset(trained.length, count);
        sigmas = levels.map(function (i) { return trained[i]; });
      } else {
        // L = 1 is the last level alone, as levelSubset gives the network (geometricSigmas(a, b, 1) is [a])
        sigmas = count === 1 ? [trained[trained.length - 1]] :
          L.geometricSigmas(trained[0], trained[trained.length - 1], count);
        levels = sigmas.map(function (s, i) { return i; });
      }
      // each level's equilibrium split: the mass of q_sigma_i (component variances s_k^2 + sigma_i^2) on each side
      equilibrium = mix.K === 2 ? sigmas.map(function (sg) { return L.sideFraction(mix, heavy, sg, "perturbed"); }) : [];
    }
    function scoreAt(pts, m, out, i, sigma) {
      if (pts === x) L.loseOverflow(pts, m);  // the run's own chains, as the package's float32 loses them
      if (scoreCtl.get() === "network") return net.forward(pts, m, out, levels[i]);
      return mix.score(pts, m, out, sigma);
    }
    function background(i) {
      var sigma = sigmas[i];
      view.lim = Math.max(lim, 2.5 * sigma);  // zoom out while the noise is large
      view.clear();
      view.density(mix, sigma, 100, 1.3);
      view.arrows(function (p, m) { return scoreAt(p, m, null, i, sigma); }, 16, "rgba(0,0,0,0.55)");
      var c = view.ctx;  // the square the chains start in
      c.setLineDash([4, 4]); c.strokeStyle = "#666";
      c.strokeRect(view.px(-lim), view.py(lim), view.px(lim) - view.px(-lim), view.py(-lim) - view.py(lim));
      c.setLineDash([]);
      view.axes(view.lim > 20 ? 20 : view.lim > 10 ? 10 : 4);
      view.keep();
      shownLevel = i;
    }
    function restart() {
      schedule();
      rng.reset();
      if (clicked) L.pointStarts(clicked, n, x); else L.uniformStarts(rng, n, lim, x);
      run = new L.AnnealedRun({sigmas: sigmas, eps: eCtl.get(), nStepsEach: Math.round(tCtl.get()),
        convention: cCtl.get(), x: x, n: n, rng: rng, scoreAt: scoreAt});
      every = Math.max(1, Math.ceil(run.total / 500));  // at most about 500 points on the chart
      trace = [];
      record();
      background(0);
      draw();
      anim.start();
    }
    function summary() {
      var f = mix.modeFractions(x, n)[heavy], lp = 0, m = 0, inside = 0, i;
      for (i = 0; i < n; i++) {
        var a = x[2 * i], b = x[2 * i + 1];
        if (!isFinite(a) || !isFinite(b)) continue;
        lp += mix.logProb(a, b); m += 1;
        if (Math.abs(a) <= lim && Math.abs(b) <= lim) inside += 1;
      }
      var se = Math.sqrt(f * (1 - f) / m), lev = run.level();
      var head = "level " + (lev + 1) + " of " + sigmas.length + ", \u03c3 = " + sigmas[lev].toPrecision(3) +
        (scoreCtl.get() === "network" ? " (network level " + (levels[lev] + 1) + ")" : "") +
        (sigmas.length === 1 ? ", the last level alone: plain Langevin" : "") + ";  step " + run.t +
        " of " + run.total + "\n";
      var body = m === 0 ? "all " + n + " chains diverged (not finite)\n" :
        "fraction nearest (" + mix.means[heavy].join(", ") + "): " + L.fmt(f) + " \u00b1 " + L.fmt(se) +
        "   (the data: " + L.fmt(target) + ")\n" +
        "mean log p of the chains under the data's density: " + L.fmt(lp / m, 2) + (m < n ? "   (" + (n - m) +
        " of " + n + " chains diverged)" : "") + "\n";
      return {fraction: f, se: se, mean_log_p: lp / m, finite: m, inside: inside / n, level: lev + 1, sigma: sigmas[lev],
        text: head + body + "share inside [\u2212" + lim + ", " + lim + "]\u00b2: " + L.fmt(inside / n)};
    }
    function record() { trace.push([run.t, mix.modeFractions(x, n)[heavy]]); }
    /** k more sampler steps, one at a time, the fraction recorded every `every` steps and at the end. */
    function advance(k) {
      for (var j = 0; j < k && run.t < run.total; j++) {
        run.advance(1);
        if (run.t % every === 0 || run.t === run.total) record();
      }
      return run.t >= run.total;
    }
    function chart() {
      L.fractionChart(cT, {total: run.total, weight: target, mode: modeName, weightName: "the data's weight",
        traces: [{points: trace, color: "rgb(214,39,40)", name: "chains"}], equilibrium: equilibrium,
        stepsEach: run.nStepsEach});
    }
    function draw() {
      var lev = run.level();
      if (lev !== shownLevel) background(lev);
      view.points([{pts: x, n: n, color: [214, 39, 40], size: 2}]);
      chart();
      stats.textContent = summary().text;
    }
    function tick(budget) {
      var t0 = performance.now(), done = false, cap = Math.max(1, Math.ceil(run.total / 150)), k = 0;
      while (!done && k < cap && performance.now() - t0 < budget) { done = advance(1); k += 1; }
      draw();
      return !done;
    }
    L.onPoint(view, canvas, function (p) { clicked = p; restart(); });
    restart();
    return {
      /** Run k more sampler steps now (for tests and the curious: root.figure.advance(1000)). */
      advance: function (k) { var d = advance(k); draw(); return d; },
      state: function () {
        var sm = summary(), pts = [], i;
        for (i = 0; i < n; i++) pts.push([x[2 * i], x[2 * i + 1]]);
        delete sm.text;
        sm.kind = "ncsn_sampler"; sm.score = scoreCtl.get(); sm.sigmas = sigmas; sm.network_levels = levels;
        sm.eps = eCtl.get(); sm.n_steps_each = Math.round(tCtl.get()); sm.convention = cCtl.get(); sm.seed = seed;
        sm.t = run.t; sm.total = run.total; sm.start = clicked ? clicked : "uniform"; sm.points = pts;
        sm.trace = trace.slice(); sm.equilibrium = equilibrium.slice();
        return sm;
      }
    };
  };
})(typeof window !== "undefined" ? window : this);
