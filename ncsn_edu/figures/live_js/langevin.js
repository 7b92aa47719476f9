/* ncsn-edu live figure "langevin" (chapter 1): plain Langevin dynamics on a 2-D Gaussian mixture
 * with its exact score. Settings (ncsn_edu.figures.live.langevin_figure): mixture, lim, n (chains),
 * step_size, n_steps, seed, step_min, step_max, steps_max. Click the plot to start a cloud of
 * chains at that point; Reset restarts the uniform starts with the same seed. */
(function (global) {
  "use strict";
  var L = global.NCSNLive;
  L.figures.langevin = function (ui, cfg) {
    var mix = new L.Mixture(cfg.mixture), lim = cfg.lim || 8, n = cfg.n || 1280;
    var rng = new L.Rng(cfg.seed || 0), x = new Float64Array(2 * n), s = new Float64Array(2 * n);
    var t = 0, start = "uniform", clicked = null;
    var panels = L.el("div", {"class": "ncsn-live-row"}, ui);
    var canvas = L.canvas(panels, 440, 440, "density (shading), exact score (arrows) and the chains (red)");
    var view = new L.View(canvas, lim);
    var side = L.el("div", {"class": "ncsn-live-side"}, panels);
    var stepCtl = L.slider(side, {label: "step size \u03b5", name: "step_size", log: true, min: cfg.step_min || 0.001,
      max: cfg.step_max || 3.9, value: cfg.step_size || 0.1, round: L.round2, format: function (v) { return v.toPrecision(3); },
      onchange: restart});
    var stepsCtl = L.slider(side, {label: "steps T", name: "n_steps", log: true, min: 1, max: cfg.steps_max || 20000,
      value: cfg.n_steps || 1000, round: function (v) { return Math.max(1, Math.round(L.round2(v))); },
      format: function (v) { return String(Math.round(v)); }, onchange: restart});
    var buttons = L.el("div", {"class": "ncsn-live-buttons"}, side);
    var runBtn = L.button(buttons, "Pause", function () { if (anim.running()) { anim.stop(); runBtn.textContent = "Run"; } else { anim.start(); runBtn.textContent = "Pause"; } });
    L.button(buttons, "Reset", function () { clicked = null; start = "uniform"; restart(); });
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
      for (var i = 0; i < n; i++) {
        if (clicked) { x[2 * i] = clicked[0]; x[2 * i + 1] = clicked[1]; }
        else { x[2 * i] = (rng.uniform() * 2 - 1) * lim; x[2 * i + 1] = (rng.uniform() * 2 - 1) * lim; }
      }
      draw();
      anim.start(); runBtn.textContent = "Pause";
    }
    function stationary() {
      // chapter 1: on N(mu, v I) the chain settles at variance v / (1 - eps / (4 v)); diverges for eps >= 4 v
      var v = mix.stds[0] * mix.stds[0], eps = stepCtl.get();
      for (var k = 1; k < mix.K; k++) if (mix.stds[k] !== mix.stds[0]) return NaN;
      return eps >= 4 * v ? Infinity : v / (1 - eps / (4 * v));
    }
    /** Pooled variance (and fourth moment) of the coordinates' offsets from each chain's nearest mean. */
    function offsetMoments() {
      var s2 = 0, s4 = 0, m = 0;
      for (var i = 0; i < n; i++) {
        var a = x[2 * i], b = x[2 * i + 1];
        if (!isFinite(a) || !isFinite(b)) continue;
        var k = mix.nearest(a, b), dx = a - mix.means[k][0], dy = b - mix.means[k][1];
        s2 += dx * dx + dy * dy; s4 += dx * dx * dx * dx + dy * dy * dy * dy; m += 2;
      }
      return {v: m ? s2 / m : NaN, m4: m ? s4 / m : NaN, count: m};
    }
    function summary() {
      var f = mix.modeFractions(x, n), lines = ["step " + t + " of " + stepsWanted()], k;
      for (k = 0; k < mix.K; k++) {
        var se = Math.sqrt(f[k] * (1 - f[k]) / n);
        lines.push("mode (" + mix.means[k].join(", ") + "): fraction " + L.fmt(f[k]) + " \u00b1 " + L.fmt(se) +
          " (weight " + L.fmt(mix.weights[k]) + ")");
      }
      var m = offsetMoments(), spread = m.v, th = stationary();
      // standard errors: of a pooled sample variance, sqrt((m4 - v^2) / m), and of its square root by the delta method
      var vse = Math.sqrt(Math.max(m.m4 - m.v * m.v, 0) / m.count), sd = Math.sqrt(spread), sdSe = vse / (2 * sd);
      lines.push("variance around the nearest mode: " + L.fmt(spread) + " \u00b1 " + L.fmt(vse));
      lines.push("  spread (its square root): " + L.fmt(sd) + " \u00b1 " + L.fmt(sdSe));
      lines.push("stationary variance v/(1 \u2212 \u03b5/(4v)): " + (th === Infinity ? "diverges (\u03b5 \u2265 4v)" :
        isFinite(th) ? L.fmt(th) : "no closed form (unequal stds)"));
      if (isFinite(th)) lines.push("  spread (its square root): " + L.fmt(Math.sqrt(th)));
      return {fractions: Array.prototype.slice.call(f), spread: spread, spread_se: vse, stationary: th, text: lines.join("\n")};
    }
    function draw() {
      view.points([{pts: x, n: n, color: [214, 39, 40], size: 2}]);
      stats.textContent = summary().text;
    }
    var anim = L.animator(ui, function (budget) {
      var T = stepsWanted(), eps = stepCtl.get(), t0 = performance.now(), cap = Math.max(1, Math.ceil(T / 90)), done = 0;
      while (t < T && done < cap && performance.now() - t0 < budget) {
        mix.score(x, n, s);
        L.langevinStep(x, n, s, eps, rng);
        t += 1; done += 1;
      }
      draw();
      if (t >= T) { runBtn.textContent = "Run"; return false; }
      return true;
    });
    canvas.addEventListener("click", function (ev) {
      var p = view.eventPoint(ev);
      if (!view.inside(p)) return;
      clicked = p; restart();
    });
    background();
    restart();
    return {
      state: function () {
        var pts = [], i, sm = summary();
        for (i = 0; i < n; i++) pts.push([x[2 * i], x[2 * i + 1]]);
        return {kind: "langevin", step_size: stepCtl.get(), n_steps: stepsWanted(), t: t, seed: cfg.seed || 0,
          start: clicked ? clicked : "uniform", fractions: sm.fractions, spread: sm.spread, spread_se: sm.spread_se,
          stationary: sm.stationary,
          points: pts};
      }
    };
  };
})(typeof window !== "undefined" ? window : this);
