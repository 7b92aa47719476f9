/* ncsn-edu live figure "langevin" (chapter 1): plain Langevin dynamics on a 2-D Gaussian mixture
 * with its exact score. Settings (ncsn_edu.figures.live.langevin_figure): mixture, lim, n (chains),
 * step_size, n_steps, seed, step_min, step_max, steps_max. Click the plot to start a cloud of
 * chains at that point; Reset restarts the uniform starts with the same seed. */
(function (global) {
  "use strict";
  var L = global.NCSNLive;
  L.figures.langevin = function (ui, cfg) {
    var mix = new L.Mixture(cfg.mixture), lim = cfg.lim, n = cfg.n;
    var rng = new L.Rng(cfg.seed), x = new Float64Array(2 * n), s = new Float64Array(2 * n);
    var t = 0, clicked = null;
    var panels = L.el("div", {"class": "ncsn-live-row"}, ui);
    var canvas = L.canvas(panels, 440, 440, "density (shading), exact score (arrows) and the chains (red)");
    var view = new L.View(canvas, lim);
    var side = L.el("div", {"class": "ncsn-live-side"}, panels);
    var stepCtl = L.slider(side, {label: "step size \u03b5", name: "step_size", log: true, min: cfg.step_min,
      max: cfg.step_max, value: cfg.step_size, round: L.round2, format: function (v) { return v.toPrecision(3); },
      onchange: restart});
    var stepsCtl = L.slider(side, {label: "steps T", name: "n_steps", log: true, min: 1, max: cfg.steps_max,
      value: cfg.n_steps, round: function (v) { return Math.max(1, Math.round(L.round2(v))); },
      format: function (v) { return String(Math.round(v)); }, onchange: restart});
    var anim = L.animator(ui, tick);
    var buttons = L.el("div", {"class": "ncsn-live-buttons"}, side);
    L.runButton(buttons, anim);
    L.button(buttons, "Reset", function () { clicked = null; restart(); });
    L.el("p", {"class": "ncsn-live-hint"}, side, "Click the plot to start " + n + " chains at one point.");
    var stats = L.el("pre", {"class": "ncsn-live-stats", "aria-live": "polite"}, side);

    function stepsWanted() { return Math.round(stepsCtl.get()); }
    function background() {
      view.clear();
      view.density(mix, 0, 120, 1);
      view.arrows(function (p, m) { return mix.score(p, m); }, 20, "rgba(0,0,0,0.75)");
      view.axes();
      view.keep();
    }
    function restart() {
      rng.reset(); t = 0;
      if (clicked) L.pointStarts(clicked, n, x); else L.uniformStarts(rng, n, lim, x);
      draw();
      anim.start();
    }
    function stationary() {
      // chapter 1: on N(mu, v I) the chain settles at variance v / (1 - eps / (4 v)); diverges for eps >= 4 v
      var v = mix.stds[0] * mix.stds[0], eps = stepCtl.get();
      for (var k = 1; k < mix.K; k++) if (mix.stds[k] !== mix.stds[0]) return NaN;
      return eps >= 4 * v ? Infinity : v / (1 - eps / (4 * v));
    }
    function summary() {
      var f = mix.modeFractions(x, n), lines = ["step " + t + " of " + stepsWanted()], k;
      for (k = 0; k < mix.K; k++) {
        var se = Math.sqrt(f[k] * (1 - f[k]) / n);
        lines.push("mode (" + mix.means[k].join(", ") + "): fraction " + L.fmt(f[k]) + " \u00b1 " + L.fmt(se) +
          " (weight " + L.fmt(mix.weights[k]) + ")");
      }
      var sp = L.spreadAroundModes(mix, x, n), th = stationary();
      lines.push("variance around the nearest mode: " + L.fmt(sp.variance) + " \u00b1 " + L.fmt(sp.variance_se));
      lines.push("  spread (its square root): " + L.fmt(sp.std) + " \u00b1 " + L.fmt(sp.std_se));
      lines.push("stationary variance v/(1 \u2212 \u03b5/(4v)): " + (th === Infinity ? "diverges (\u03b5 \u2265 4v)" :
        isFinite(th) ? L.fmt(th) : "no closed form (unequal stds)"));
      if (isFinite(th)) lines.push("  spread (its square root): " + L.fmt(Math.sqrt(th)));
      return {fractions: Array.prototype.slice.call(f), spread: sp.variance, spread_se: sp.variance_se, stationary: th,
        text: lines.join("\n")};
    }
    function draw() {
      view.points([{pts: x, n: n, color: [214, 39, 40], size: 2}]);
      stats.textContent = summary().text;
    }
    function tick(budget) {
      var T = stepsWanted(), eps = stepCtl.get(), t0 = performance.now(), cap = Math.max(1, Math.ceil(T / 90)), done = 0;
      while (t < T && done < cap && performance.now() - t0 < budget) {
        mix.score(x, n, s);
        L.langevinStep(x, n, s, eps, rng);
        t += 1; done += 1;
      }
      draw();
      return t < T;
    }
    L.onPoint(view, canvas, function (p) { clicked = p; restart(); });
    background();
    restart();
    return {
      state: function () {
        var pts = [], i, sm = summary();
        for (i = 0; i < n; i++) pts.push([x[2 * i], x[2 * i + 1]]);
        return {kind: "langevin", step_size: stepCtl.get(), n_steps: stepsWanted(), t: t, seed: cfg.seed,
          start: clicked ? clicked : "uniform", fractions: sm.fractions, spread: sm.spread, spread_se: sm.spread_se,
          stationary: sm.stationary,
          points: pts};
      }
    };
  };
})(typeof window !== "undefined" ? window : this);
