/* ncsn-edu live figure "perturbed" (chapters 1 and 4): the noise-perturbed mixture
 * q_sigma = p * N(0, sigma^2 I) (each component's covariance s_k^2 I + sigma^2 I, as
 * GaussianMixture.perturbed(sigma)) for any sigma, with its exact score, and a profile along the
 * diagonal x1 = x2 = t. Settings (ncsn_edu.figures.live.perturbed_figure): mixture, lim, sigma, sigma_min,
 * sigma_max, midpoint and mode (the two points whose density ratio is printed), heavy (index of
 * the heaviest component) and, for chapter 4, networks: [{sigma, network, sample_error}], the
 * ScoreMLPs the chapter trained by denoising score matching at those sigmas. With networks the
 * figure also shows the network trained at the trained sigma nearest (in log sigma) to the slider's,
 * against the exact score of q at that trained sigma, and the first score component along the
 * diagonal. Clicking a plot reads the values at that point. */
(function (global) {
  "use strict";
  var L = global.NCSNLive;

  function vec(v) { return "(" + L.fmt(v[0], 2) + ", " + L.fmt(v[1], 2) + ")"; }
  function sci(v) { return isFinite(v) ? (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e4) ? v.toExponential(2) : v.toPrecision(3)) : String(v); }

  /** The index of the trained sigma nearest to `sigma` in log sigma (sigma = 0: the smallest). */
  function nearestTrained(trained, sigma) {
    var best = 0, bd = Infinity;
    for (var i = 0; i < trained.length; i++) {
      var d = sigma > 0 ? Math.abs(Math.log(trained[i] / sigma)) : trained[i];
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  }
  L.nearestTrained = nearestTrained;

  L.figures.perturbed = function (ui, cfg) {
    var mix = new L.Mixture(cfg.mixture), lim = cfg.lim;
    var sMin = cfg.sigma_min, sMax = cfg.sigma_max, heavy = cfg.heavy;
    var mid = cfg.midpoint, modePt = cfg.mode;
    var nets = cfg.networks.map(function (e) {
      return {sigma: e.sigma, net: new L.Network(e.network), sampleError: e.sample_error};
    }).sort(function (a, b) { return a.sigma - b.sigma; });
    var trained = nets.map(function (e) { return e.sigma; });
    var nProfile = 201, tAxis = new Float64Array(nProfile), diag = new Float64Array(2 * nProfile), i;
    for (i = 0; i < nProfile; i++) { tAxis[i] = -lim + 2 * lim * i / (nProfile - 1); diag[2 * i] = diag[2 * i + 1] = tAxis[i]; }
    var clicked = null, current = null, netCache = {}, drawnNet = null;

    // the controls above the plots, so that on a phone the slider and the first plot are on screen together
    var top = L.el("div", {}, ui);
    var panels = L.el("div", {"class": "ncsn-live-row"}, ui);
    var cq = L.canvas(panels, 420, 362, "q_\u03c3");
    var vq = new L.View(cq, lim, {right: 62});
    var capQ = cq.nextSibling;
    var cn = null, vn = null, capN = null;
    if (nets.length) {
      cn = L.canvas(panels, 420, 362, "network");
      vn = new L.View(cn, lim, {right: 62});
      capN = cn.nextSibling;
    }
    var cp = L.canvas(panels, 420, 300, "profile");
    // without networks the two curves run from 0 to 1; the headroom above 1 holds the legend, so that it
    // hides no curve at any sigma (at sigma = 20 the density is near 1 all along the diagonal)
    var plot = nets.length ? new L.LinePlot(cp, [-lim, lim], [-10, 10]) : new L.LinePlot(cp, [-lim, lim], [0, 1.3]);
    if (!nets.length) plot.yTickMax = 1;
    var capP = cp.nextSibling;
    var side = L.el("div", {"class": "ncsn-live-side"}, panels);
    var sigCtl = L.slider(top, {label: "noise level \u03c3", name: "sigma", log: true, min: sMin, max: sMax,
      value: Math.max(cfg.sigma, sMin),
      round: function (v) { return v <= sMin * (1 + 1e-9) ? 0 : v; },
      format: function (v) { return v === 0 ? "0" : v.toPrecision(3); }, onchange: function () { draw(); }});
    // positions 0..1000 in any steps (not only integers), so that the chapter's own values (3, 0.5) are shown exactly
    sigCtl.input.step = "any";
    sigCtl.set(Math.max(cfg.sigma, sMin));
    var buttons = L.el("div", {"class": "ncsn-live-buttons"}, top);
    L.button(buttons, "\u03c3 = 0", function () { sigCtl.set(sMin); draw(); });  // the left end is sigma = 0
    trained.forEach(function (s) { L.button(buttons, "\u03c3 = " + s, function () { sigCtl.set(s); draw(); }); });
    L.el("p", {"class": "ncsn-live-hint"}, top, "Drag \u03c3 (the left end is \u03c3 = 0, no noise; arrow keys move it " +
      "too). Click a plot to read the values at that point; the dotted line marks it on the diagonal.");
    var stats = L.el("pre", {"class": "ncsn-live-stats", "aria-live": "polite"}, side);

    /** log q_sigma on the view's heat grid, relative to its largest value there. */
    function shade(view, sigma) {
      view.clear();
      view.density(mix, sigma, 120, 1);
      view.colourBar(view.left + view.size + 10, view.top + 10, 12, view.size - 20, "Blues", 0, 1, "q\u03c3 / its peak", [0, 0.5, 1]);
    }
    /** Everything about the network trained at trained[j], computed once. */
    function netInfo(j) {
      if (netCache[j]) return netCache[j];
      var e = nets[j], nx = 50, g = vq.gridPoints(nx), m = nx * nx;
      var learned = e.net.forward(g, m), exact = mix.score(g, m, null, e.sigma), num = 0, den = 0, mx = -Infinity, k;
      var lp = new Float64Array(m);
      for (k = 0; k < m; k++) { lp[k] = mix.logProb(g[2 * k], g[2 * k + 1], e.sigma); if (lp[k] > mx) mx = lp[k]; }
      for (k = 0; k < m; k++) {
        var w = Math.exp(lp[k] - mx), dx = learned[2 * k] - exact[2 * k], dy = learned[2 * k + 1] - exact[2 * k + 1];
        num += w * Math.sqrt(dx * dx + dy * dy); den += w;
      }
      var pl = e.net.forward(diag, nProfile), pe = mix.score(diag, nProfile, null, e.sigma);
      var out = {sigma: e.sigma, error: num / den, grid: nx, learned: new Float64Array(nProfile), exact: new Float64Array(nProfile)};
      for (k = 0; k < nProfile; k++) { out.learned[k] = pl[2 * k]; out.exact[k] = pe[2 * k]; }
      netCache[j] = out;
      return out;
    }
    function compute(sigma) {
      var r = {sigma: sigma, t: tAxis, ratio: Math.exp(mix.logProb(mid[0], mid[1], sigma) - mix.logProb(modePt[0], modePt[1], sigma))};
      r.stds = Array.from(mix.variances(sigma), function (v) { return Math.sqrt(v); });
      if (!nets.length) {
        var lp = new Float64Array(nProfile), mx = -Infinity, k;
        r.density = new Float64Array(nProfile); r.pHeavy = new Float64Array(nProfile);
        for (k = 0; k < nProfile; k++) { lp[k] = mix.logProb(tAxis[k], tAxis[k], sigma); if (lp[k] > mx) mx = lp[k]; }
        for (k = 0; k < nProfile; k++) {
          r.density[k] = Math.exp(lp[k] - mx);
          r.pHeavy[k] = mix.responsibilities(tAxis[k], tAxis[k], sigma)[heavy];
        }
      } else {
        r.j = nearestTrained(trained, sigma);
        r.net = netInfo(r.j);
        var sc = mix.score(diag, nProfile, null, sigma), s0 = mix.score(diag, nProfile, null, 0);
        r.exactLive = new Float64Array(nProfile); r.clean = new Float64Array(nProfile);
        for (var q = 0; q < nProfile; q++) { r.exactLive[q] = sc[2 * q]; r.clean[q] = s0[2 * q]; }
      }
      return r;
    }
    function readout(r) {
      if (!clicked) return null;
      var p = Float64Array.from(clicked), sigma = r.sigma;
      var lpPeak = -Infinity, g = vq.gridPoints(120);
      for (var k = 0; k < 120 * 120; k++) lpPeak = Math.max(lpPeak, mix.logProb(g[2 * k], g[2 * k + 1], sigma));
      var o = {point: clicked, sigma: sigma, density_rel: Math.exp(mix.logProb(p[0], p[1], sigma) - lpPeak),
        score: Array.from(mix.score(p, 1, null, sigma)), p_heavy: mix.responsibilities(p[0], p[1], sigma)[heavy]};
      if (r.net) {
        var e = nets[r.j];
        o.sigma_train = e.sigma;
        o.learned = Array.from(e.net.forward(p, 1));
        o.exact_train = Array.from(mix.score(p, 1, null, e.sigma));
        o.difference = Math.hypot(o.learned[0] - o.exact_train[0], o.learned[1] - o.exact_train[1]);
      }
      return o;
    }
    function draw() {
      var sigma = sigCtl.get(), r = compute(sigma), k;
      shade(vq, sigma);
      vq.arrows(function (p, m) { return mix.score(p, m, null, sigma); }, 20, "rgba(0,0,0,0.8)");
      vq.axes();
      vq.marker(clicked);
      capQ.textContent = "q\u03c3 at \u03c3 = " + sci(sigma) + " (shading, relative to its peak) and its exact score \u2207log q\u03c3 (arrows, length \u221d log(1 + |score|))";
      if (nets.length) {
        var e = nets[r.j], st = e.sigma;
        var netKey = r.j + ":" + (clicked ? clicked.join(",") : "");
        if (netKey !== drawnNet) {  // the network panel changes only with the trained sigma shown and the click
          shade(vn, st);
          vn.arrows(function (p, m) { return mix.score(p, m, null, st); }, 20, "rgba(214,39,40,0.75)", 1.2);
          vn.arrows(function (p, m) { return e.net.forward(p, m); }, 20, "rgba(0,0,0,0.9)");
          vn.axes();
          vn.marker(clicked);
          drawnNet = netKey;
        }
        capN.textContent = "The network trained by DSM at \u03c3 = " + st + " (the trained \u03c3 nearest to " + sci(sigma) +
          "): learned score (black) against the exact \u2207log q\u03c3 at \u03c3 = " + st + " (red), over q at \u03c3 = " + st + ".";
        plot.frame("position t on the diagonal x\u2081 = x\u2082 = t", "first score component");
        plot.line(tAxis, r.clean, "#1f77b4", 1.5, [2, 3]);
        plot.line(tAxis, r.exactLive, "#999", 1.2);
        plot.line(tAxis, r.net.exact, "#d62728", 2, [6, 4]);
        plot.line(tAxis, r.net.learned, "#000", 2);
        if (clicked) plot.vline((clicked[0] + clicked[1]) / 2);
        plot.legend([["learned by DSM at \u03c3 = " + st, "#000"], ["exact \u2207log q\u03c3, \u03c3 = " + st, "#d62728", [6, 4]],
          ["clean \u2207log p", "#1f77b4", [2, 3]], ["exact \u2207log q\u03c3 at the slider's \u03c3", "#999"]], "bl");
        capP.textContent = "First score component along the diagonal through both modes: the network trained at \u03c3 = " + st +
          ", the exact perturbed score there, the clean score, and (grey) the exact score at the slider's \u03c3 = " + sci(sigma) + ".";
      } else {
        plot.frame("position t on the diagonal x\u2081 = x\u2082 = t", "value");
        plot.line(tAxis, r.density, "#1f77b4", 2);
        plot.line(tAxis, r.pHeavy, "#ff7f0e", 2, [6, 4]);
        if (clicked) plot.vline((clicked[0] + clicked[1]) / 2);
        plot.legend([["q\u03c3 / its peak on the diagonal", "#1f77b4"], ["p(heavy mode | x)", "#ff7f0e", [6, 4]]], "tl");
        capP.textContent = "Along the diagonal x\u2081 = x\u2082 = t at \u03c3 = " + sci(sigma) +
          ": the density relative to its peak on the diagonal, and the probability of the heavy mode.";
      }
      var stds = r.stds.every(function (v) { return v === r.stds[0]; }) ? [r.stds[0]] : r.stds;
      var lines = ["\u03c3 = " + sci(sigma) + ",  component std \u221a(s\u2096\u00b2 + \u03c3\u00b2): " +
        stds.map(function (v) { return L.fmt(v, 3); }).join(", "),
        "q\u03c3(" + mid.join(", ") + ") / q\u03c3(" + modePt.join(", ") + ") = " + sci(r.ratio)];
      if (r.net) {
        lines.push("network: trained at \u03c3 = " + r.net.sigma + " (of " + trained.join(", ") + ")");
        lines.push("mean |s\u03b8 \u2212 \u2207log q\u03c3| at \u03c3 = " + r.net.sigma + ": " + L.fmt(r.net.error, 3));
        lines.push("  (" + r.net.grid + "\u00d7" + r.net.grid + " grid, weighted by q at \u03c3 = " + r.net.sigma + ")");
        if (isFinite(nets[r.j].sampleError)) lines.push("  chapter's table (noisy samples): " + L.fmt(nets[r.j].sampleError, 3));
      }
      var ro = readout(r);
      if (ro) {
        lines.push("at x = " + vec(ro.point) + ":  q\u03c3/peak " + sci(ro.density_rel) + ",  p(heavy | x) " + L.fmt(ro.p_heavy, 3));
        lines.push("  exact score " + vec(ro.score));
        if (r.net) lines.push("  network (\u03c3 = " + ro.sigma_train + ") " + vec(ro.learned) + ", exact at \u03c3 = " +
          ro.sigma_train + " " + vec(ro.exact_train) + ", |difference| " + L.fmt(ro.difference, 3));
      } else {
        lines.push("(click a plot to read the values at a point)");
      }
      stats.textContent = lines.join("\n");
      current = {r: r, readout: ro};
    }
    function readAt(p) { clicked = p; draw(); }
    L.onPoint(vq, cq, readAt);
    if (cn) L.onPoint(vn, cn, readAt);
    cp.addEventListener("click", function (ev) {  // the profile: the point (t, t) of the diagonal
      var t = plot.eventX(ev);
      if (t >= -lim && t <= lim) readAt([t, t]);
    });
    draw();
    return {
      state: function () {
        var r = current.r, out = {kind: "perturbed", sigma: r.sigma, ratio: r.ratio, component_stds: r.stds,
          midpoint: mid, mode: modePt, click: clicked, readout: current.readout, t: Array.from(r.t),
          profile: plot.geometry()};
        if (r.net) {
          out.sigma_train = r.net.sigma; out.trained = trained; out.error = r.net.error; out.error_grid = r.net.grid;
          out.learned = Array.from(r.net.learned); out.exact_train = Array.from(r.net.exact);
          out.exact = Array.from(r.exactLive); out.clean = Array.from(r.clean);
        } else {
          out.density = Array.from(r.density); out.p_heavy = Array.from(r.pHeavy);
        }
        return out;
      }
    };
  };
})(typeof window !== "undefined" ? window : this);
