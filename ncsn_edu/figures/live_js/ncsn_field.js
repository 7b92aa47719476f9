/* ncsn-edu live figure "ncsn_field" (chapter 8): the book's trained toy NCSN, running in the page,
 * against the exact score of the perturbed mixture. A continuous sigma slider over the trained
 * range: the right panel shows q_sigma and its exact score at that sigma; the left panel the
 * network at the nearest trained level sigma_i (a level-conditioned network knows only its levels;
 * a sigma-conditioned one is evaluated at sigma itself) over q_{sigma_i}. Click a panel to read
 * both scores there. Settings (ncsn_edu.figures.live.ncsn_field_figure): mixture, network, lim, level. */
(function (global) {
  "use strict";
  var L = global.NCSNLive;

  /** On an nx x nx grid over [-lim, lim]^2, with q the perturbed density at sigma: the q-weighted
   * mean |s_theta - s| (weighted), that over the q-weighted mean |s| (weightedRelative), the
   * unweighted mean |s_theta - s| / mean |s| (relative), and the q-weighted root-mean-square
   * relative error sqrt(sum q |s_theta - s|^2 / sum q |s|^2) (rmsRelative): on a grid that covers
   * q, the quadrature of the relative error ncsn_edu.toy.metrics.per_level_score_errors measures
   * on samples of q. */
  L.fieldError = function (mix, net, level, sigma, lim, nx, netSigma) {
    var g = new Float64Array(2 * nx * nx), h = 2 * lim / nx, i, j;
    for (j = 0; j < nx; j++) for (i = 0; i < nx; i++) {
      g[2 * (j * nx + i)] = -lim + (i + 0.5) * h; g[2 * (j * nx + i) + 1] = -lim + (j + 0.5) * h;
    }
    var m = nx * nx, a = net.forward(g, m, null, level, netSigma), b = mix.score(g, m, null, sigma);
    var wsum = 0, werr = 0, ssum = 0, esum = 0, wsn = 0, werr2 = 0, wsn2 = 0;
    for (i = 0; i < m; i++) {
      var dx = a[2 * i] - b[2 * i], dy = a[2 * i + 1] - b[2 * i + 1], e2 = dx * dx + dy * dy, e = Math.sqrt(e2);
      var sn2 = b[2 * i] * b[2 * i] + b[2 * i + 1] * b[2 * i + 1], sn = Math.sqrt(sn2);
      var w = Math.exp(mix.logProb(g[2 * i], g[2 * i + 1], sigma));
      wsum += w; werr += w * e; wsn += w * sn; esum += e; ssum += sn; werr2 += w * e2; wsn2 += w * sn2;
    }
    return {weighted: werr / wsum, weightedRelative: werr / wsn, relative: esum / ssum,
      rmsRelative: Math.sqrt(werr2 / wsn2)};
  };

  /** Half-width of a square that holds q_sigma but for about 1e-7 of its mass: every mean plus
   * six of its component's standard deviations sqrt(s_k^2 + sigma^2), and at least lim. */
  L.coverHalfWidth = function (mix, sigma, lim) {
    var h = lim, v = mix.variances(sigma), k;
    for (k = 0; k < mix.K; k++) {
      h = Math.max(h, Math.max(Math.abs(mix.means[k][0]), Math.abs(mix.means[k][1])) + 6 * Math.sqrt(v[k]));
    }
    return h;
  };

  L.figures.ncsn_field = function (ui, cfg) {
    var mix = new L.Mixture(cfg.mixture), net = new L.Network(cfg.network), sig = net.sigmas, nL = sig.length;
    var lim = cfg.lim, probe = null;
    var row = L.el("div", {"class": "ncsn-live-row"}, ui);
    var cN = L.canvas(row, 380, 380, "learned score s\u03b8(x, \u03c3\u1d62) over q at \u03c3\u1d62");
    var cE = L.canvas(row, 380, 380, "exact score \u2207log q\u03c3 over q\u03c3");
    var vN = new L.View(cN, lim), vE = new L.View(cE, lim);
    var side = L.el("div", {"class": "ncsn-live-side"}, ui);
    var sCtl = L.slider(side, {label: "noise level \u03c3", name: "sigma", log: true, min: sig[nL - 1], max: sig[0],
      value: sig[cfg.level], format: function (v) { return v.toPrecision(3); },
      onchange: draw});
    L.el("p", {"class": "ncsn-live-hint"}, side, "Click either plot to read both scores at that point.");
    var stats = L.el("pre", {"class": "ncsn-live-stats", "aria-live": "polite"}, side);

    function nearestLevel(s) {
      var best = 0, bd = Infinity;
      for (var i = 0; i < nL; i++) { var d = Math.abs(Math.log(sig[i] / s)); if (d < bd) { bd = d; best = i; } }
      return best;
    }
    function netAt() {
      var s = sCtl.get(), i = nearestLevel(s);
      return net.condition === "sigma" ? {level: i, sigma: s} : {level: i, sigma: sig[i]};
    }
    function panel(view, sigma, field) {
      view.clear();
      view.density(mix, sigma, 100, 1.15);
      view.arrows(field, 20, "rgba(0,0,0,0.8)");
      view.marker(probe);
      view.axes();
    }
    function summary() {
      var s = sCtl.get(), at = netAt(), ns = net.condition === "sigma" ? at.sigma : null;
      var e = L.fieldError(mix, net, at.level, at.sigma, lim, 40, ns);
      var h = L.coverHalfWidth(mix, at.sigma, lim), c = L.fieldError(mix, net, at.level, at.sigma, h, 60, ns);
      var lines = ["\u03c3 = " + s.toPrecision(3) + " (exact panel);  network at " +
        (net.condition === "sigma" ? "\u03c3 = " + at.sigma.toPrecision(3) : "level " + (at.level + 1) + " of " + nL +
        ", \u03c3\u1d62 = " + at.sigma.toPrecision(3)),
        "relative error \u221a(E|s\u03b8 \u2212 \u2207log q|\u00b2 / E|\u2207log q|\u00b2) under q at the network's \u03c3: " +
        L.fmt(c.rmsRelative),
        "  (the table's measure; a grid on [\u2212" + h.toFixed(0) + ", " + h.toFixed(0) + "]\u00b2, which holds q)",
        "in the window [\u2212" + lim + ", " + lim + "]\u00b2: mean |s\u03b8 \u2212 \u2207log q| weighted by q " +
        L.fmt(e.weighted) + ", unweighted relative " + L.fmt(e.relative)];
      var out = {sigma: s, level: at.level, network_sigma: at.sigma, rms_relative_error: c.rmsRelative, cover: h,
        weighted_error: e.weighted, weighted_relative_error: e.weightedRelative, relative_error: e.relative};
      if (probe) {
        var p = Float64Array.from(probe), a = net.forward(p, 1, null, at.level, net.condition === "sigma" ? at.sigma : null);
        var b = mix.score(p, 1, null, at.sigma), bs = mix.score(p, 1, null, s);
        lines.push("at (" + probe[0].toFixed(2) + ", " + probe[1].toFixed(2) + "):  learned (" + L.fmt(a[0], 2) + ", " +
          L.fmt(a[1], 2) + ")  exact at \u03c3\u1d62 (" + L.fmt(b[0], 2) + ", " + L.fmt(b[1], 2) + ")  exact at \u03c3 (" +
          L.fmt(bs[0], 2) + ", " + L.fmt(bs[1], 2) + ")");
        out.probe = {x: probe, learned: [a[0], a[1]], exact_at_level: [b[0], b[1]], exact: [bs[0], bs[1]]};
      }
      out.text = lines.join("\n");
      return out;
    }
    function draw() {
      var s = sCtl.get(), at = netAt(), ns = net.condition === "sigma" ? at.sigma : null;
      panel(vN, at.sigma, function (p, m) { return net.forward(p, m, null, at.level, ns); });
      panel(vE, s, function (p, m) { return mix.score(p, m, null, s); });
      stats.textContent = summary().text;
    }
    function probeAt(p) { probe = p; draw(); }
    L.onPoint(vN, cN, probeAt);
    L.onPoint(vE, cE, probeAt);
    draw();
    return {
      state: function () {
        var sm = summary();
        delete sm.text;
        sm.kind = "ncsn_field"; sm.sigmas = sig; sm.condition = net.condition;
        return sm;
      }
    };
  };
})(typeof window !== "undefined" ? window : this);
