/* ncsn-edu live figures: the core library (plain JavaScript, no framework, no network).
 *
 * One copy serves the built book and Jupyter/Colab output cells: ncsn_edu.figures.live emits this file
 * inline, followed by the figure kinds a page uses (live_js/<kind>.js) and a call to
 * NCSNLive.mount(rootId). Nothing is fetched: weights and settings travel inside the page.
 *
 * The mathematics follows the Python package under the package's names:
 *   Mixture.logProb / score          ncsn_edu.toy.distributions.GaussianMixture(.perturbed(sigma))
 *   annealed "code" convention       ncsn_edu.toy.distributions.annealed_score_fn(..., "code")
 *   langevinStep                     ncsn_edu.sampling.langevin_dynamics (x + eps/2 s + sqrt(eps) z)
 *   stepCoefficients                 ncsn_edu.sampling.step_coefficients ("paper" and "code")
 *   geometricSigmas                  ncsn_edu.schedules.geometric_sigmas
 *   Network                          ncsn_edu.toy.nets.ScoreMLP and ConditionalScoreMLP
 *   Mixture.modeFractions            ncsn_edu.toy.distributions.mode_fractions
 *   spreadAroundModes                ncsn_edu.toy.distributions.spread_around_modes
 *   sideFraction                     ncsn_edu.toy.annealing_theory.equilibrium_side_fraction
 * It also holds the frame every figure kind shares (onPoint, runButton, uniformStarts, View.marker,
 * LinePlot, fractionChart), so that a kind's file (live_js/<kind>.js) holds only its mathematics and
 * its readout.
 * A kind reads its settings from `cfg` as ncsn_edu.figures.live sends them, with no defaults of its
 * own: the defaults live in Python only.
 * Points are flat Float64Arrays [x0, y0, x1, y1, ...]; scores are written into an `out` array.
 */
(function (global) {
  "use strict";
  if (global.NCSNLive && global.NCSNLive.core) return;
  var L = global.NCSNLive = global.NCSNLive || {};
  L.core = true;
  L.figures = L.figures || {};

  /* ---------- random numbers: a seeded generator, so a reset reproduces the same chains ---------- */

  /** mulberry32 uniforms on [0, 1) and Box-Muller normals, from a 32-bit seed. */
  function Rng(seed) { this.seed = seed >>> 0; this.reset(); }
  Rng.prototype.reset = function () { this.s = this.seed; this.spare = null; };
  Rng.prototype.uniform = function () {
    var t = (this.s = (this.s + 0x6D2B79F5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  Rng.prototype.normal = function () {
    if (this.spare !== null) { var v = this.spare; this.spare = null; return v; }
    var u1 = this.uniform(), u2 = this.uniform();
    while (u1 <= 0) u1 = this.uniform();
    var r = Math.sqrt(-2 * Math.log(u1));
    this.spare = r * Math.sin(2 * Math.PI * u2);
    return r * Math.cos(2 * Math.PI * u2);
  };
  /** Fill `out` (length 2n) with standard normals. */
  Rng.prototype.normals = function (out, count) {
    for (var i = 0; i < count; i++) out[i] = this.normal();
    return out;
  };
  L.Rng = Rng;

  /* ---------- the 2-D Gaussian mixture with exact (perturbed) log-density and score ---------- */

  /** sum_k w_k N(mu_k, s_k^2 I) in 2-D; cfg = {means: [[x, y], ...], stds: [...], weights: [...]}. */
  function Mixture(cfg) {
    var K = cfg.means.length, tot = 0, k;
    if (!K || cfg.stds.length !== K || cfg.weights.length !== K) throw new Error("Mixture: one std and one weight per mean");
    this.K = K;
    this.means = cfg.means.map(function (m) { return [Number(m[0]), Number(m[1])]; });
    this.stds = cfg.stds.map(Number);
    for (k = 0; k < K; k++) {
      if (!(this.stds[k] > 0) || !(cfg.weights[k] >= 0)) throw new Error("Mixture: stds must be positive, weights non-negative");
      tot += Number(cfg.weights[k]);
    }
    if (!(tot > 0)) throw new Error("Mixture: the weights must not all be zero");
    this.weights = cfg.weights.map(function (w) { return Number(w) / tot; });
    this._cache = {};
  }
  /** The same means and stds with other weights (normalised). */
  Mixture.prototype.withWeights = function (weights) {
    return new Mixture({means: this.means, stds: this.stds, weights: weights});
  };
  /** Each component's variance at noise level sigma: "perturbed" s_k^2 + sigma^2 (the density of
   * x + sigma z), or "code" sigma^2 (the official toy runner replaces each std by sigma). */
  Mixture.prototype.variances = function (sigma, convention) {
    sigma = sigma || 0;
    var v = new Float64Array(this.K), k;
    for (k = 0; k < this.K; k++) {
      if (convention === "code") {
        if (!(sigma > 0)) throw new Error("the code convention needs sigma > 0");
        v[k] = sigma * sigma;
      } else if (!convention || convention === "perturbed") {
        v[k] = this.stds[k] * this.stds[k] + sigma * sigma;
      } else {
        throw new Error("convention must be 'perturbed' or 'code'");
      }
    }
    return v;
  };
  Mixture.prototype._coefs = function (sigma, convention) {
    var key = (convention || "perturbed") + ":" + (sigma || 0);
    var c = this._cache[key];
    if (c) return c;
    var v = this.variances(sigma, convention), K = this.K, k;
    c = {inv: new Float64Array(K), logc: new Float64Array(K)};
    for (k = 0; k < K; k++) {
      c.inv[k] = 1 / v[k];
      c.logc[k] = Math.log(this.weights[k]) - Math.log(2 * Math.PI * v[k]);  // D = 2
    }
    if (Object.keys(this._cache).length > 64) this._cache = {};
    this._cache[key] = c;
    return c;
  };
  /** log q_sigma(x, y). */
  Mixture.prototype.logProb = function (x, y, sigma, convention) {
    var c = this._coefs(sigma, convention), K = this.K, mx = -Infinity, k, a, lp = new Float64Array(K);
    for (k = 0; k < K; k++) {
      var dx = x - this.means[k][0], dy = y - this.means[k][1];
      a = c.logc[k] - 0.5 * (dx * dx + dy * dy) * c.inv[k];
      lp[k] = a;
      if (a > mx) mx = a;
    }
    if (mx === -Infinity) return -Infinity;
    var s = 0;
    for (k = 0; k < K; k++) s += Math.exp(lp[k] - mx);
    return mx + Math.log(s);
  };
  /** Posterior component probabilities p(k | x) under q_sigma. */
  Mixture.prototype.responsibilities = function (x, y, sigma, convention) {
    var c = this._coefs(sigma, convention), K = this.K, mx = -Infinity, k, r = new Float64Array(K), s = 0;
    for (k = 0; k < K; k++) {
      var dx = x - this.means[k][0], dy = y - this.means[k][1];
      r[k] = c.logc[k] - 0.5 * (dx * dx + dy * dy) * c.inv[k];
      if (r[k] > mx) mx = r[k];
    }
    for (k = 0; k < K; k++) { r[k] = Math.exp(r[k] - mx); s += r[k]; }
    for (k = 0; k < K; k++) r[k] /= s;
    return r;
  };
  /** Exact scores of q_sigma at n points: out[2i], out[2i+1] = sum_k p(k|x) (mu_k - x) / var_k. */
  Mixture.prototype.score = function (pts, n, out, sigma, convention) {
    var c = this._coefs(sigma, convention), K = this.K, lp = new Float64Array(K), i, k;
    out = out || new Float64Array(2 * n);
    for (i = 0; i < n; i++) {
      var x = pts[2 * i], y = pts[2 * i + 1], mx = -Infinity, s = 0, sx = 0, sy = 0;
      for (k = 0; k < K; k++) {
        var dx = x - this.means[k][0], dy = y - this.means[k][1];
        lp[k] = c.logc[k] - 0.5 * (dx * dx + dy * dy) * c.inv[k];
        if (lp[k] > mx) mx = lp[k];
      }
      for (k = 0; k < K; k++) {
        var r = Math.exp(lp[k] - mx);
        s += r;
        sx += r * (this.means[k][0] - x) * c.inv[k];
        sy += r * (this.means[k][1] - y) * c.inv[k];
      }
      out[2 * i] = sx / s;
      out[2 * i + 1] = sy / s;
    }
    return out;
  };
  /** Index of the nearest component mean (ncsn_edu.toy.distributions.nearest_component). */
  Mixture.prototype.nearest = function (x, y) {
    var best = 0, bd = Infinity, k;
    for (k = 0; k < this.K; k++) {
      var dx = x - this.means[k][0], dy = y - this.means[k][1], d = dx * dx + dy * dy;
      if (d < bd) { bd = d; best = k; }
    }
    return best;
  };
  /** Fraction of the finite points nearest to each mean (ncsn_edu.toy.distributions.mode_fractions). */
  Mixture.prototype.modeFractions = function (pts, n) {
    var f = new Float64Array(this.K), m = 0, i;
    for (i = 0; i < n; i++) {
      var x = pts[2 * i], y = pts[2 * i + 1];
      if (!isFinite(x) || !isFinite(y)) continue;
      f[this.nearest(x, y)] += 1; m += 1;
    }
    for (i = 0; i < this.K; i++) f[i] = m ? f[i] / m : NaN;
    return f;
  };
  /** n exact samples of q_sigma. */
  Mixture.prototype.sample = function (n, rng, sigma, convention) {
    var v = this.variances(sigma, convention), out = new Float64Array(2 * n), i, k;
    for (i = 0; i < n; i++) {
      var u = rng.uniform(), acc = 0;
      for (k = 0; k < this.K - 1; k++) { acc += this.weights[k]; if (u < acc) break; }
      var sd = Math.sqrt(v[k]);
      out[2 * i] = this.means[k][0] + sd * rng.normal();
      out[2 * i + 1] = this.means[k][1] + sd * rng.normal();
    }
    return out;
  };
  L.Mixture = Mixture;

  /* ---------- Langevin dynamics, plain and annealed (ncsn_edu.sampling) ---------- */

  /** One step x <- x + drift * s + noise * z on n chains, in place; z from `rng` or given. A chain
   * holds `dim` numbers (2 for the toys' points, the default; 784 for a 28 x 28 image). */
  function step(x, n, s, drift, noise, rng, z, dim) {
    for (var i = 0; i < (dim || 2) * n; i++) {
      var zi = z ? z[i] : rng.normal();
      x[i] = x[i] + drift * s[i] + noise * zi;
    }
    return x;
  }
  L.step = step;
  /** Plain Langevin (langevin_dynamics): x <- x + step_size/2 * s(x) + sqrt(step_size) z. */
  L.langevinStep = function (x, n, s, stepSize, rng, z) {
    if (!(stepSize > 0)) throw new Error("step_size must be positive");
    return step(x, n, s, 0.5 * stepSize, Math.sqrt(stepSize), rng, z);
  };
  /** (drift, noise) of one annealed step at level sigma, as sampling.step_coefficients:
   * "paper": alpha = eps sigma^2 / sigma_L^2, (alpha/2, sqrt(alpha)); "code": a = eps sigma^2 /
   * sigma_L^2, (a, sqrt(2a)), which is the paper's update with 2 eps. */
  L.stepCoefficients = function (eps, sigma, sigmaLast, convention) {
    var a = eps * sigma * sigma / (sigmaLast * sigmaLast);
    if (convention === "code") return [a, Math.sqrt(2 * a)];
    if (convention && convention !== "paper") throw new Error("convention must be 'paper' or 'code'");
    return [a / 2, Math.sqrt(a)];
  };
  /** schedules.geometric_sigmas: n levels from sigmaBegin down to sigmaEnd, geometrically. */
  L.geometricSigmas = function (sigmaBegin, sigmaEnd, n) {
    if (n < 1 || !(sigmaBegin > 0) || !(sigmaEnd > 0) || sigmaBegin < sigmaEnd) throw new Error("bad noise levels");
    if (n === 1) return [sigmaBegin];
    var out = [], a = Math.log(sigmaBegin), b = Math.log(sigmaEnd);
    for (var i = 0; i < n; i++) out.push(Math.exp(a + (b - a) * i / (n - 1)));
    return out;
  };
  /** Annealed Langevin (Algorithm 1) as a resumable run: `scoreAt(x, n, out, level, sigma)`
   * gives the scores at level `level`; advance(k) does k more steps (n_steps_each per level).
   * opts.dim (default 2) is the size of one chain (784 for a 28 x 28 image). A network that answers
   * asynchronously (the image figures' onnxruntime, live_js/mnist.js) drives the same run by hand:
   * next() gives the level and sigma of the coming step ({level, sigma}, or null when the run is
   * done), apply(s) takes that step with the scores s at the current x. Each step draws its noise
   * z (n * dim normals from `rng`, kept in run.z) after the scores, as the package does.
   * With opts.known (n * dim values) and opts.mask (dim or n * dim entries, 1 = known) the run is
   * Algorithm 2 (ncsn_edu.images.inpainting.annealed_langevin_inpainting): before a level's first
   * step the known entries become y = known + sigma_i z' (one draw z' of the whole state per
   * level, run.zy), and after every step they are set back to y (run.y). */
  function AnnealedRun(opts) {
    this.sigmas = opts.sigmas; this.eps = opts.eps; this.nStepsEach = opts.nStepsEach;
    this.convention = opts.convention || "paper"; this.scoreAt = opts.scoreAt;
    this.x = opts.x; this.n = opts.n; this.rng = opts.rng; this.t = 0; this.dim = opts.dim || 2;
    this.total = this.sigmas.length * this.nStepsEach;
    this.s = new Float64Array(this.x.length);
    this.z = new Float64Array(this.n * this.dim);
    this.known = opts.known || null; this.mask = opts.mask || null; this.yLevel = -1;
    if (this.known) {
      if (!this.mask || this.known.length !== this.n * this.dim) throw new Error("inpainting needs n * dim known values and a mask");
      this.y = new Float64Array(this.n * this.dim); this.zy = new Float64Array(this.n * this.dim);
    }
  }
  AnnealedRun.prototype.level = function () { return Math.min(Math.floor(this.t / this.nStepsEach), this.sigmas.length - 1); };
  /** Set the known entries of x to y (Algorithm 2); nothing without a mask. */
  AnnealedRun.prototype.clamp = function () {
    if (!this.known) return;
    var m = this.mask, ml = m.length, x = this.x, y = this.y;
    for (var j = 0; j < this.n * this.dim; j++) if (m[j % ml]) x[j] = y[j];
  };
  AnnealedRun.prototype.next = function () {
    if (this.t >= this.total) return null;
    var i = Math.floor(this.t / this.nStepsEach), sigma = this.sigmas[i];
    if (this.known && this.yLevel !== i) {  // a new level: y = x + sigma_i z', known entries set to y
      this.rng.normals(this.zy, this.n * this.dim);
      for (var j = 0; j < this.n * this.dim; j++) this.y[j] = this.known[j] + sigma * this.zy[j];
      this.yLevel = i;
      this.clamp();
    }
    return {level: i, sigma: sigma};
  };
  AnnealedRun.prototype.apply = function (s) {
    var cur = this.next();
    if (!cur) return true;
    var c = L.stepCoefficients(this.eps, cur.sigma, this.sigmas[this.sigmas.length - 1], this.convention);
    this.rng.normals(this.z, this.n * this.dim);
    step(this.x, this.n, s, c[0], c[1], null, this.z, this.dim);
    this.clamp();
    this.t += 1;
    return this.t >= this.total;
  };
  AnnealedRun.prototype.advance = function (k) {
    for (var j = 0; j < k && this.t < this.total; j++) {
      var cur = this.next();
      if (this.s.length < this.dim * this.n) this.s = new Float64Array(this.x.length);
      this.scoreAt(this.x, this.n, this.s, cur.level, cur.sigma);
      this.apply(this.s);
    }
    return this.t >= this.total;
  };
  L.AnnealedRun = AnnealedRun;

  /* ---------- the book's toy score networks (ncsn_edu.toy.nets), weights exported by ncsn_edu.figures.live ---------- */

  function b64bytes(s) {
    var bin = global.atob(s), u = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) u[i] = bin.charCodeAt(i);
    return u;
  }
  function halfToFloat(h) {
    var s = (h & 0x8000) ? -1 : 1, e = (h >> 10) & 0x1f, f = h & 0x3ff;
    if (e === 0) return s * Math.pow(2, -14) * (f / 1024);
    if (e === 31) return f ? NaN : s * Infinity;
    return s * Math.pow(2, e - 15) * (1 + f / 1024);
  }
  /** A little-endian float32 (or float16) array from its base64 text. */
  function decode(a) {
    var u = b64bytes(a.data);
    if (a.dtype === "float16") {
      var h = new Uint16Array(u.buffer), out = new Float32Array(h.length);
      for (var i = 0; i < h.length; i++) out[i] = halfToFloat(h[i]);
      return out;
    }
    if (a.dtype !== "float32") throw new Error("unknown dtype " + a.dtype);
    return new Float32Array(u.buffer);
  }
  L.decode = decode;
  /** A linear layer's weights, widened to float64 once (the forward pass then mixes no precisions). */
  function linear(spec) {
    return {W: Float64Array.from(decode(spec.weight)), b: Float64Array.from(decode(spec.bias)), nIn: spec.in, nOut: spec.out};
  }
  /** torch.nn.functional.softplus (beta 1, threshold 20). */
  function softplus(v) { return v > 20 ? v : Math.log1p(Math.exp(v)); }
  L.softplus = softplus;

  /** A toy score network: spec.type "mlp" (ScoreMLP: Linear-softplus-...-Linear) or "cond_mlp"
   * (ConditionalScoreMLP: h <- softplus(gamma_i (W h + b) + beta_i), optional division by sigma). */
  function Network(spec) {
    this.type = spec.type;
    this.linears = spec.linears.map(linear);
    this.out = linear(spec.out);
    this.dim = spec.dim;
    if (spec.type === "cond_mlp") {
      this.condition = spec.condition;
      this.sigmas = spec.sigmas.slice();
      this.scaleOutput = !!spec.scale_output;
      this.hidden = spec.hidden; this.nHidden = spec.n_hidden;
      this.nMod = 2 * this.hidden * this.nHidden;
      if (spec.condition === "level") this.table = decode(spec.embed.table);
      else this.embed = spec.embed.linears.map(linear);
    } else if (spec.type !== "mlp") {
      throw new Error("unknown network type " + spec.type);
    }
    var w = this.hidden || 0;
    this.linears.forEach(function (l) { w = Math.max(w, l.nOut); });
    this.h0 = new Float64Array(w); this.h1 = new Float64Array(w);
    this.mod = new Float64Array(this.nMod || 0);
  }
  /** gamma and beta for a level index, or (sigma-conditioned) for any sigma. */
  Network.prototype.modulation = function (level, sigma) {
    var m = this.mod, j;
    if (this.condition === "level") {
      if (!(level >= 0 && level < this.sigmas.length)) throw new Error("level outside 0.." + (this.sigmas.length - 1));
      var row = this.table.subarray(level * this.nMod, (level + 1) * this.nMod);
      for (j = 0; j < this.nMod; j++) m[j] = row[j];
      return m;
    }
    var e0 = this.embed[0], e1 = this.embed[1], t = new Float64Array(e0.nOut), ls = Math.log(sigma);
    for (j = 0; j < e0.nOut; j++) t[j] = softplus(e0.W[j] * ls + e0.b[j]);
    for (j = 0; j < e1.nOut; j++) {
      var acc = e1.b[j], off = j * e1.nIn;
      for (var q = 0; q < e1.nIn; q++) acc += e1.W[off + q] * t[q];
      m[j] = acc;
    }
    return m;
  };
  /** Scores at n points into `out`. For a conditional network give `level` (an index into its
   * sigmas) or, sigma-conditioned only, `sigma` (any positive value; level ignored when null). */
  Network.prototype.forward = function (pts, n, out, level, sigma) {
    out = out || new Float64Array(2 * n);
    var cond = this.type === "cond_mlp", mod = null, k = 0, scale = 1;
    if (cond) {
      if (sigma === undefined || sigma === null) sigma = this.sigmas[level];
      if (this.condition === "level" || !(sigma > 0)) mod = this.modulation(level, sigma);
      else mod = this.modulation(null, sigma);
      k = this.hidden * this.nHidden;
      if (this.scaleOutput) scale = 1 / sigma;
    }
    var layers = this.linears, nl = layers.length, o = this.out, w = this.h0.length;
    if (!this.hb || this.hb.length < 4 * w) this.hb = new Float64Array(4 * w);
    var hb = this.hb;
    // two points at a time: each weight is loaded once for both (the 128 x 128 layer dominates)
    for (var i = 0; i < n; i += 2) {
      var two = i + 1 < n, ha = hb.subarray(0, w), hc = hb.subarray(w, 2 * w);
      var ga = hb.subarray(2 * w, 3 * w), gc = hb.subarray(3 * w, 4 * w), nIn = 2;
      ha[0] = pts[2 * i]; ha[1] = pts[2 * i + 1];
      hc[0] = two ? pts[2 * i + 2] : 0; hc[1] = two ? pts[2 * i + 3] : 0;
      for (var l = 0; l < nl; l++) {
        var lin = layers[l], W = lin.W, b = lin.b, nOut = lin.nOut, base = l * lin.nOut;
        for (var r = 0; r < nOut; r++) {
          var acc = b[r], acc2 = b[r], off = r * nIn, c = 0;
          for (; c + 3 < nIn; c += 4) {
            var w0 = W[off + c], w1 = W[off + c + 1], w2 = W[off + c + 2], w3 = W[off + c + 3];
            acc += w0 * ha[c] + w1 * ha[c + 1] + w2 * ha[c + 2] + w3 * ha[c + 3];
            acc2 += w0 * hc[c] + w1 * hc[c + 1] + w2 * hc[c + 2] + w3 * hc[c + 3];
          }
          for (; c < nIn; c++) { acc += W[off + c] * ha[c]; acc2 += W[off + c] * hc[c]; }
          if (cond) {
            acc = mod[base + r] * acc + mod[k + base + r];
            acc2 = mod[base + r] * acc2 + mod[k + base + r];
          }
          ga[r] = acc > 20 ? acc : Math.log1p(Math.exp(acc));
          gc[r] = acc2 > 20 ? acc2 : Math.log1p(Math.exp(acc2));
        }
        var t1 = ha; ha = ga; ga = t1; var t2 = hc; hc = gc; gc = t2; nIn = nOut;
      }
      for (var d = 0; d < o.nOut; d++) {
        var a2 = o.b[d], a3 = o.b[d], off2 = d * nIn;
        for (var c2 = 0; c2 < nIn; c2++) { a2 += o.W[off2 + c2] * ha[c2]; a3 += o.W[off2 + c2] * hc[c2]; }
        out[2 * i + d] = a2 * scale;
        if (two) out[2 * i + 2 + d] = a3 * scale;
      }
    }
    return out;
  };
  L.Network = Network;

  /* ---------- drawing: a square view of [-lim, lim]^2 with axes, heat maps, arrows, points ---------- */

  var CMAPS = {
    Blues: [[247, 251, 255], [222, 235, 247], [198, 219, 239], [158, 202, 225], [107, 174, 214], [66, 146, 198],
      [33, 113, 181], [8, 81, 156], [8, 48, 107]],
    magma: [[0, 0, 4], [28, 16, 68], [79, 18, 123], [129, 37, 129], [181, 54, 122], [229, 80, 100], [251, 135, 97],
      [254, 194, 135], [252, 253, 191]],
    Greys: [[255, 255, 255], [150, 150, 150], [0, 0, 0]]
  };
  /** [r, g, b] of colour map `name` at t in [0, 1]. */
  function cmap(name, t) {
    var c = CMAPS[name] || CMAPS.Blues, n = c.length - 1;
    t = isFinite(t) ? Math.min(Math.max(t, 0), 1) : 0;
    var u = t * n, i = Math.min(Math.floor(u), n - 1), f = u - i;
    return [c[i][0] + f * (c[i + 1][0] - c[i][0]), c[i][1] + f * (c[i + 1][1] - c[i][1]), c[i][2] + f * (c[i + 1][2] - c[i][2])];
  }
  L.cmap = cmap;

  /** A plot on `canvas` of the square [-lim, lim]^2 (y up), with margins for axis labels. */
  function View(canvas, lim, opts) {
    opts = opts || {};
    this.canvas = canvas; this.ctx = canvas.getContext("2d");
    this.lim = lim;
    this.left = opts.left || 38; this.bottom = opts.bottom || 32; this.top = opts.top || 8;
    this.right = opts.right || 8;
    this.size = Math.min(canvas.width - this.left - this.right, canvas.height - this.top - this.bottom);
    this.bg = null;
  }
  View.prototype.px = function (x) { return this.left + (x + this.lim) / (2 * this.lim) * this.size; };
  View.prototype.py = function (y) { return this.top + (this.lim - y) / (2 * this.lim) * this.size; };
  /** Data coordinates of a mouse event on the canvas (handles CSS scaling). */
  View.prototype.eventPoint = function (ev) {
    var r = this.canvas.getBoundingClientRect(), sx = this.canvas.width / r.width, sy = this.canvas.height / r.height;
    var cx = (ev.clientX - r.left) * sx, cy = (ev.clientY - r.top) * sy;
    return [-this.lim + (cx - this.left) / this.size * 2 * this.lim, this.lim - (cy - this.top) / this.size * 2 * this.lim];
  };
  View.prototype.inside = function (p) { return Math.abs(p[0]) <= this.lim && Math.abs(p[1]) <= this.lim; };
  /** Grid of nx x nx cell centres over the view, row 0 at the top, as flat points. */
  View.prototype.gridPoints = function (nx) {
    var pts = new Float64Array(2 * nx * nx), i, j, h = 2 * this.lim / nx;
    for (j = 0; j < nx; j++) for (i = 0; i < nx; i++) {
      pts[2 * (j * nx + i)] = -this.lim + (i + 0.5) * h;
      pts[2 * (j * nx + i) + 1] = this.lim - (j + 0.5) * h;
    }
    return pts;
  };
  /** Start a new background: white, then `values` (nx*nx, row 0 at the top) through a colour map. */
  View.prototype.clear = function () {
    var c = this.ctx;
    c.setTransform(1, 0, 0, 1, 0, 0);
    c.fillStyle = "#fff"; c.fillRect(0, 0, this.canvas.width, this.canvas.height);
  };
  View.prototype.heat = function (values, nx, name, vmin, vmax) {
    var off = global.document.createElement("canvas"), img, i, k;
    off.width = nx; off.height = nx;
    var oc = off.getContext("2d");
    img = oc.createImageData(nx, nx);
    for (i = 0; i < nx * nx; i++) {
      var col = cmap(name, (values[i] - vmin) / (vmax - vmin));
      k = 4 * i; img.data[k] = col[0]; img.data[k + 1] = col[1]; img.data[k + 2] = col[2]; img.data[k + 3] = 255;
    }
    oc.putImageData(img, 0, 0);
    this.ctx.imageSmoothingEnabled = false;
    this.ctx.drawImage(off, this.left, this.top, this.size, this.size);
  };
  /** Shade the density of `mix` at noise level sigma (relative to its peak on the grid, raised to
   * `power`) on an nx x nx grid over the view, with colour map "Blues" scaled to [0, vmax]. */
  View.prototype.density = function (mix, sigma, nx, vmax, power) {
    var g = this.gridPoints(nx), vals = new Float64Array(nx * nx), mx = -Infinity, i;
    for (i = 0; i < nx * nx; i++) { vals[i] = mix.logProb(g[2 * i], g[2 * i + 1], sigma); if (vals[i] > mx) mx = vals[i]; }
    for (i = 0; i < nx * nx; i++) vals[i] = Math.exp((vals[i] - mx) * (power || 1));
    this.heat(vals, nx, "Blues", 0, vmax || 1);
  };
  /** Arrows of a field on an n x n grid, lengths growing like log(1 + |s|) (plotting.plot_score_field). */
  View.prototype.arrows = function (field, n, color, width) {
    var pts = new Float64Array(2 * n * n), i, j, h = 2 * this.lim / (n - 1);
    for (j = 0; j < n; j++) for (i = 0; i < n; i++) {
      pts[2 * (j * n + i)] = -this.lim + i * h; pts[2 * (j * n + i) + 1] = -this.lim + j * h;
    }
    var s = field(pts, n * n), big = 0;
    for (i = 0; i < n * n; i++) {
      var m = Math.log1p(Math.sqrt(s[2 * i] * s[2 * i] + s[2 * i + 1] * s[2 * i + 1]));
      if (isFinite(m) && m > big) big = m;
    }
    this.arrowsAt(pts, s, n * n, big, this.size / (n - 1) * 0.9, color, width);
  };
  /** Arrows of the field s at the m points pts, of length log(1 + |s|) / big of `cell` pixels (one
   * `big` for several fields draws them on one scale). */
  View.prototype.arrowsAt = function (pts, s, m, big, cell, color, width) {
    var c = this.ctx;
    c.strokeStyle = color || "#000"; c.fillStyle = color || "#000"; c.lineWidth = width || 1;
    c.beginPath();
    for (var i = 0; i < m; i++) {
      var norm = Math.sqrt(s[2 * i] * s[2 * i] + s[2 * i + 1] * s[2 * i + 1]);
      if (!(norm > 0) || !isFinite(norm) || !(big > 0)) continue;
      var len = Math.log1p(norm) / big * cell, ux = s[2 * i] / norm, uy = -s[2 * i + 1] / norm;
      var x0 = this.px(pts[2 * i]), y0 = this.py(pts[2 * i + 1]), x1 = x0 + ux * len, y1 = y0 + uy * len;
      c.moveTo(x0, y0); c.lineTo(x1, y1);
      var hl = Math.min(4, 0.35 * len);
      c.moveTo(x1, y1); c.lineTo(x1 - hl * (ux + 0.5 * uy), y1 - hl * (uy - 0.5 * ux));
      c.moveTo(x1, y1); c.lineTo(x1 - hl * (ux - 0.5 * uy), y1 - hl * (uy + 0.5 * ux));
    }
    c.stroke();
  };
  /** Axes: frame, ticks and the labels x1, x2. */
  View.prototype.axes = function (step) {
    var c = this.ctx, lim = this.lim, t;
    step = step || (lim > 10 ? 10 : lim > 4 ? 4 : 1);
    c.strokeStyle = "#333"; c.lineWidth = 1; c.fillStyle = "#222";
    c.strokeRect(this.left + 0.5, this.top + 0.5, this.size, this.size);
    c.font = "11px sans-serif"; c.textAlign = "center"; c.textBaseline = "top";
    for (t = -Math.floor(lim / step) * step; t <= lim + 1e-9; t += step) {
      var x = this.px(t), y = this.py(t);
      c.beginPath(); c.moveTo(x, this.top + this.size); c.lineTo(x, this.top + this.size + 4); c.stroke();
      c.fillText(String(Math.round(t * 100) / 100), x, this.top + this.size + 5);
      c.beginPath(); c.moveTo(this.left, y); c.lineTo(this.left - 4, y); c.stroke();
      c.textAlign = "right"; c.textBaseline = "middle"; c.fillText(String(Math.round(t * 100) / 100), this.left - 6, y);
      c.textAlign = "center"; c.textBaseline = "top";
    }
    c.font = "italic 12px serif";
    c.fillText("x\u2081", this.left + this.size / 2, this.top + this.size + 18);
    c.save(); c.translate(10, this.top + this.size / 2); c.rotate(-Math.PI / 2);
    c.textBaseline = "middle"; c.fillText("x\u2082", 0, 0); c.restore();
  };
  /** Remember what is drawn now as the background that points are drawn over. */
  View.prototype.keep = function () {
    this.bg = this.ctx.getImageData(0, 0, this.canvas.width, this.canvas.height);
    this.work = this.ctx.createImageData(this.canvas.width, this.canvas.height);
  };
  /** Draw the kept background and, over it, point sets [{pts, n, color: [r, g, b], size}] into
   * one ImageData (no call per point), clipped to the plot area. */
  View.prototype.points = function (sets) {
    if (!this.bg) this.keep();
    var W = this.canvas.width, d = this.work.data, x0 = this.left, y0 = this.top, x1 = x0 + this.size, y1 = y0 + this.size;
    d.set(this.bg.data);
    for (var si = 0; si < sets.length; si++) {
      var S = sets[si], col = S.color, sz = S.size || 2, a = S.alpha === undefined ? 0.75 : S.alpha;
      for (var i = 0; i < S.n; i++) {
        var px = Math.round(this.px(S.pts[2 * i])), py = Math.round(this.py(S.pts[2 * i + 1]));
        if (!(px >= x0 && px < x1 - sz + 1 && py >= y0 && py < y1 - sz + 1)) continue;
        for (var dy = 0; dy < sz; dy++) for (var dx = 0; dx < sz; dx++) {
          var k = 4 * ((py + dy) * W + px + dx);
          d[k] = d[k] + a * (col[0] - d[k]); d[k + 1] = d[k + 1] + a * (col[1] - d[k + 1]);
          d[k + 2] = d[k + 2] + a * (col[2] - d[k + 2]);
        }
      }
    }
    this.ctx.putImageData(this.work, 0, 0);
  };
  /** A vertical colour bar at (x, y) of size w x h with tick labels. */
  View.prototype.colourBar = function (x, y, w, h, name, vmin, vmax, label, ticks) {
    var c = this.ctx, img = c.createImageData(w, h), i, j;
    for (j = 0; j < h; j++) {
      var col = cmap(name, 1 - j / (h - 1));
      for (i = 0; i < w; i++) {
        var k = 4 * (j * w + i);
        img.data[k] = col[0]; img.data[k + 1] = col[1]; img.data[k + 2] = col[2]; img.data[k + 3] = 255;
      }
    }
    c.putImageData(img, x, y);
    c.strokeStyle = "#333"; c.strokeRect(x + 0.5, y + 0.5, w, h);
    c.fillStyle = "#222"; c.font = "10px sans-serif"; c.textAlign = "left"; c.textBaseline = "middle";
    (ticks || [vmin, (vmin + vmax) / 2, vmax]).forEach(function (t) {
      c.fillText(String(t), x + w + 3, y + (1 - (t - vmin) / (vmax - vmin)) * h);
    });
    if (label) {
      c.save(); c.translate(x + w + 30, y + h / 2); c.rotate(-Math.PI / 2); c.textAlign = "center";
      c.fillText(label, 0, 0); c.restore();
    }
  };
  L.View = View;

  /* ---------- controls: labelled sliders (keyboard works: they are <input type=range>), buttons ---------- */

  function el(tag, attrs, parent, text) {
    var e = global.document.createElement(tag);
    for (var a in (attrs || {})) if (Object.prototype.hasOwnProperty.call(attrs, a)) e.setAttribute(a, attrs[a]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  L.el = el;
  var uidCount = 0;
  /** A labelled slider. opts: {label, name, min, max, value, step, log, format, onchange}.
   * With log, positions 0..1000 map geometrically onto [min, max]; `round` (a function) snaps the value,
   * e.g. L.round2 to two significant digits. get()/set(v) read and write the value. */
  L.slider = function (parent, opts) {
    var id = "ncsn-live-ctl-" + (++uidCount) + "-" + Math.floor(Math.random() * 1e9);
    var row = el("div", {"class": "ncsn-live-control"}, parent);
    el("label", {"for": id}, row, opts.label);
    var input = el("input", {type: "range", id: id, name: opts.name || opts.label}, row);
    var out = el("output", {"for": id}, row);
    var fmt = opts.format || function (v) { return String(Math.round(v * 1000) / 1000); };
    if (opts.log) { input.min = 0; input.max = 1000; input.step = 1; }
    else { input.min = opts.min; input.max = opts.max; input.step = opts.step || "any"; }
    function toValue(pos) {
      pos = Number(pos);
      var v = opts.log ? opts.min * Math.pow(opts.max / opts.min, pos / 1000) : pos;
      return opts.round ? opts.round(v) : v;
    }
    function toPos(v) { return opts.log ? 1000 * Math.log(v / opts.min) / Math.log(opts.max / opts.min) : v; }
    var ctl = {
      input: input, output: out, name: opts.name || opts.label,
      get: function () { return toValue(input.value); },
      set: function (v) { input.value = toPos(v); show(); }
    };
    function show() {
      var v = ctl.get();
      out.textContent = fmt(v);
      input.setAttribute("aria-valuetext", fmt(v));
    }
    input.addEventListener("input", function () { show(); if (opts.onchange) opts.onchange(ctl.get()); });
    input.ncsnControl = ctl;  // set a value (not a position) from outside: input.ncsnControl.set(v), then an input event
    ctl.set(opts.value);
    return ctl;
  };
  /** Round to two significant digits (integers stay integers): 1005 -> 1000, 0.1234 -> 0.12. */
  L.round2 = function (v) {
    if (!(v > 0)) return v;
    var p = Math.pow(10, Math.floor(Math.log10(v)) - 1);
    return Math.round(v / p) * p;
  };
  L.button = function (parent, label, onclick) {
    var b = el("button", {type: "button", "class": "ncsn-live-button"}, parent, label);
    b.addEventListener("click", onclick);
    return b;
  };
  /** A <select> of labelled options; get() returns the chosen value. */
  L.select = function (parent, label, options, value, onchange) {
    var id = "ncsn-live-ctl-" + (++uidCount) + "-" + Math.floor(Math.random() * 1e9);
    var row = el("div", {"class": "ncsn-live-control"}, parent);
    el("label", {"for": id}, row, label);
    var s = el("select", {id: id, name: label}, row);
    options.forEach(function (o) { var op = el("option", {value: String(o[1])}, s, o[0]); if (o[1] === value) op.selected = true; });
    s.addEventListener("change", function () { if (onchange) onchange(s.value); });
    return {input: s, get: function () { return s.value; }, set: function (v) { s.value = String(v); }};
  };
  /** A canvas of CSS width up to `size` pixels that scales down on narrow screens. */
  L.canvas = function (parent, width, height, label) {
    var box = el("figure", {"class": "ncsn-live-panel"}, parent);
    var c = el("canvas", {width: width, height: height, role: "img", "aria-label": label || "live figure"}, box);
    c.style.width = "100%"; c.style.maxWidth = width + "px"; c.style.height = "auto"; c.style.display = "block";
    c.style.touchAction = "manipulation";
    if (label) el("figcaption", {}, box, label);
    return c;
  };

  /* ---------- animation: run `work()` in frames while the figure is on screen ---------- */

  /** Calls tick(budgetMs) once per animation frame while `running()` is true and the root is
   * visible; tick returns false to stop. `onchange(running)`, when set, hears every start and stop. */
  L.animator = function (root, tick) {
    var visible = true, handle = null, active = false, anim;
    if (global.IntersectionObserver) {
      new global.IntersectionObserver(function (es) {
        visible = es[0].isIntersecting;
        if (visible && active && handle === null) frame();
      }).observe(root);
    }
    function set(on) { active = on; if (anim.onchange) anim.onchange(on); }
    function frame() {
      handle = null;
      if (!active || !visible) return;
      if (tick(12) === false) { set(false); return; }
      handle = global.requestAnimationFrame(frame);
    }
    anim = {
      start: function () { set(true); if (handle === null) handle = global.requestAnimationFrame(frame); },
      stop: function () { set(false); },
      running: function () { return active; },
      onchange: null
    };
    return anim;
  };

  /* ---------- the frame every figure kind shares: clicks, Run/Pause, chains' starts, a marker, a line plot ---------- */

  /** Call fn([x, y]) with the data coordinates of a click (or tap) on `canvas` that falls inside `view`'s square. */
  L.onPoint = function (view, canvas, fn) {
    canvas.addEventListener("click", function (ev) {
      var p = view.eventPoint(ev);
      if (view.inside(p)) fn(p);
    });
  };
  /** The Run/Pause button of animation `anim` (L.animator): a press pauses or resumes it, and the
   * label always names what a press will do, also when the figure restarts or finishes the run. */
  L.runButton = function (parent, anim) {
    var b = L.button(parent, anim.running() ? "Pause" : "Run", function () {
      if (anim.running()) anim.stop(); else anim.start();
    });
    anim.onchange = function (running) { b.textContent = running ? "Pause" : "Run"; };
    return b;
  };
  /** n chains' starts uniform on [-lim, lim]^2 into `out` (2n numbers): chain i's x, then its y, each
   * (u * 2 - 1) * lim for the next uniform u of `rng`, so a seed gives the same starts in every kind. */
  L.uniformStarts = function (rng, n, lim, out) {
    out = out || new Float64Array(2 * n);
    for (var i = 0; i < n; i++) {
      out[2 * i] = (rng.uniform() * 2 - 1) * lim;
      out[2 * i + 1] = (rng.uniform() * 2 - 1) * lim;
    }
    return out;
  };
  /** n chains' starts all at the point p = [x, y], into `out`. */
  L.pointStarts = function (p, n, out) {
    out = out || new Float64Array(2 * n);
    for (var i = 0; i < n; i++) { out[2 * i] = p[0]; out[2 * i + 1] = p[1]; }
    return out;
  };
  /** How every figure marks a clicked point or a probe: a ring with a cross, over a white halo. */
  L.MARKER = {color: "#0a8f3c", halo: "#fff", radius: 6, arm: 9};
  View.prototype.marker = function (p) {
    if (!p) return;
    var c = this.ctx, x = this.px(p[0]), y = this.py(p[1]), m = L.MARKER;
    c.save();
    c.lineWidth = 3; c.strokeStyle = m.halo;
    c.beginPath(); c.arc(x, y, m.radius, 0, 2 * Math.PI); c.stroke();
    c.lineWidth = 1.5; c.strokeStyle = m.color;
    c.beginPath(); c.arc(x, y, m.radius, 0, 2 * Math.PI);
    c.moveTo(x - m.arm, y); c.lineTo(x + m.arm, y); c.moveTo(x, y - m.arm); c.lineTo(x, y + m.arm); c.stroke();
    c.restore();
  };

  /** Tick positions: about n round numbers covering [a, b]. */
  function ticks(a, b, n) {
    var raw = (b - a) / (n || 5), p = Math.pow(10, Math.floor(Math.log10(raw))), f = raw / p, out = [], t;
    var stepv = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
    for (t = Math.ceil(a / stepv - 1e-9) * stepv; t <= b + 1e-9 * stepv; t += stepv) out.push(Math.abs(t) < 1e-12 ? 0 : t);
    return out;
  }
  L.ticks = ticks;
  /** A line plot of [x0, x1] x [y0, y1] on `canvas`, with margins for tick labels and axis labels. */
  function LinePlot(canvas, xr, yr) {
    this.canvas = canvas; this.ctx = canvas.getContext("2d");
    this.xr = xr; this.yr = yr;
    this.left = 48; this.right = 10; this.top = 10; this.bottom = 40;
    this.w = canvas.width - this.left - this.right; this.h = canvas.height - this.top - this.bottom;
    this.yTickMax = Infinity;  // no y ticks above this (the headroom that holds a legend)
  }
  LinePlot.prototype.px = function (x) { return this.left + (x - this.xr[0]) / (this.xr[1] - this.xr[0]) * this.w; };
  LinePlot.prototype.py = function (y) { return this.top + (this.yr[1] - y) / (this.yr[1] - this.yr[0]) * this.h; };
  LinePlot.prototype.xAt = function (cx) { return this.xr[0] + (cx - this.left) / this.w * (this.xr[1] - this.xr[0]); };
  /** The x of a click on the canvas (handles CSS scaling). */
  LinePlot.prototype.eventX = function (ev) {
    var r = this.canvas.getBoundingClientRect();
    return this.xAt((ev.clientX - r.left) * this.canvas.width / r.width);
  };
  /** White background, frame, ticks and the two axis labels. */
  LinePlot.prototype.frame = function (xlabel, ylabel) {
    var c = this.ctx, self = this;
    c.setTransform(1, 0, 0, 1, 0, 0);
    c.fillStyle = "#fff"; c.fillRect(0, 0, this.canvas.width, this.canvas.height);
    c.strokeStyle = "#333"; c.lineWidth = 1; c.fillStyle = "#222"; c.font = "11px sans-serif";
    c.strokeRect(this.left + 0.5, this.top + 0.5, this.w, this.h);
    c.textAlign = "center"; c.textBaseline = "top";
    ticks(this.xr[0], this.xr[1], 8).forEach(function (t) {
      var x = self.px(t);
      c.beginPath(); c.moveTo(x, self.top + self.h); c.lineTo(x, self.top + self.h + 4); c.stroke();
      c.fillText(String(Math.round(t * 1000) / 1000), x, self.top + self.h + 5);
    });
    c.textAlign = "right"; c.textBaseline = "middle";
    ticks(this.yr[0], Math.min(this.yr[1], this.yTickMax), 5).forEach(function (t) {
      var y = self.py(t);
      c.beginPath(); c.moveTo(self.left, y); c.lineTo(self.left - 4, y); c.stroke();
      c.fillText(String(Math.round(t * 1000) / 1000), self.left - 6, y);
    });
    c.font = "12px sans-serif"; c.textAlign = "center"; c.textBaseline = "top";
    c.fillText(xlabel, this.left + this.w / 2, this.top + this.h + 20);
    c.save(); c.translate(11, this.top + this.h / 2); c.rotate(-Math.PI / 2);
    c.textBaseline = "middle"; c.fillText(ylabel, 0, 0); c.restore();
  };
  /** A polyline of (xs[i], ys[i]), clipped to the plot area. */
  LinePlot.prototype.line = function (xs, ys, color, width, dash) {
    var c = this.ctx, started = false;
    c.save();
    c.beginPath(); c.rect(this.left, this.top, this.w, this.h); c.clip();
    c.strokeStyle = color; c.lineWidth = width || 1.5; c.setLineDash(dash || []);
    c.beginPath();
    for (var i = 0; i < xs.length; i++) {
      if (!isFinite(ys[i])) { started = false; continue; }
      var X = this.px(xs[i]), Y = this.py(Math.max(Math.min(ys[i], 1e6), -1e6));
      if (started) c.lineTo(X, Y); else { c.moveTo(X, Y); started = true; }
    }
    c.stroke(); c.restore();
  };
  /** Where the plot sits on its canvas and what it spans (for state() and the tests). */
  LinePlot.prototype.geometry = function () {
    return {xr: this.xr, yr: this.yr, left: this.left, top: this.top, w: this.w, h: this.h, legend: this.legendBox || null};
  };
  /** A dotted vertical line at x (by default in the marker's colour: where the reader clicked). */
  LinePlot.prototype.vline = function (x, color) {
    if (!(x >= this.xr[0] && x <= this.xr[1])) return;
    var c = this.ctx, X = this.px(x);
    c.save(); c.strokeStyle = color || L.MARKER.color; c.lineWidth = 1; c.setLineDash([2, 3]);
    c.beginPath(); c.moveTo(X, this.top); c.lineTo(X, this.top + this.h); c.stroke(); c.restore();
  };
  /** A legend box in the corner `where` ("tl" or "bl"): items [[label, color, dash], ...]. */
  LinePlot.prototype.legend = function (items, where) {
    var c = this.ctx, lh = 15, w = 0, x = this.left + 6, y, i;
    c.font = "11px sans-serif";
    for (i = 0; i < items.length; i++) w = Math.max(w, c.measureText(items[i][0]).width);
    y = where === "bl" ? this.top + this.h - 6 - lh * items.length : this.top + 6;
    c.fillStyle = "rgba(255,255,255,0.85)"; c.fillRect(x, y, w + 36, lh * items.length + 4);
    this.legendBox = [x, y, w + 36, lh * items.length + 4];  // canvas pixels, for state() and the tests
    for (i = 0; i < items.length; i++) {
      var yy = y + 2 + lh * i + lh / 2;
      c.strokeStyle = items[i][1]; c.lineWidth = 1.8; c.setLineDash(items[i][2] || []);
      c.beginPath(); c.moveTo(x + 4, yy); c.lineTo(x + 28, yy); c.stroke(); c.setLineDash([]);
      c.fillStyle = "#222"; c.textAlign = "left"; c.textBaseline = "middle"; c.fillText(items[i][0], x + 32, yy);
    }
  };
  L.LinePlot = LinePlot;

  /* ---------- two modes: each level's equilibrium split, and the chart of the split against the step ---------- */

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
  L.sideFraction = function (mix, heavy, sigma, convention) {
    var a = mix.means[heavy], b = mix.means[1 - heavy], v = mix.variances(sigma, convention);
    var nx = a[0] - b[0], ny = a[1] - b[1], nn = Math.sqrt(nx * nx + ny * ny);
    var cx = (a[0] + b[0]) / 2, cy = (a[1] + b[1]) / 2, f = 0;
    for (var k = 0; k < 2; k++) {
      var d = ((mix.means[k][0] - cx) * nx + (mix.means[k][1] - cy) * ny) / nn;
      f += mix.weights[k] * ndtr(d / Math.sqrt(v[k]));
    }
    return f;
  };

  /** The chart of the samplers of chapters 7 and 9: the fraction of chains nearest to one mode against
   * the step, on `canvas`. opts = {total: the last step on the x axis, weight: the mode's weight (black,
   * dashed), mode: the mode's name, traces: [{points: [[step, fraction], ...], color, name}],
   * equilibrium: each level's equilibrium fraction (green, dashed; optional), stepsEach: steps per level,
   * weightName: the weight's name in the legend}. */
  L.fractionChart = function (canvas, opts) {
    var c = canvas.getContext("2d"), W = canvas.width, H = canvas.height, l = 54, r = 20, t = 10, b = 34;
    var T = Math.max(opts.total, 1), w = opts.weight, eq = opts.equilibrium || [];
    function X(step) { return l + (W - l - r) * step / T; }
    function Y(f) { return t + (H - t - b) * (1 - f); }
    c.fillStyle = "#fff"; c.fillRect(0, 0, W, H);
    c.strokeStyle = "#333"; c.strokeRect(l + 0.5, t + 0.5, W - l - r, H - t - b);
    c.fillStyle = "#222"; c.font = "11px sans-serif"; c.textAlign = "right"; c.textBaseline = "middle";
    [0, 0.25, 0.5, 0.75, 1].forEach(function (f) { c.fillText(f.toFixed(2), l - 4, Y(f)); });
    c.textAlign = "center"; c.textBaseline = "top";
    [0, 0.5, 1].forEach(function (q) { c.fillText(String(Math.round(q * T)), X(q * T), H - b + 4); });
    c.fillText("step", l + (W - l - r) / 2, H - 16);
    c.save(); c.translate(4, t + (H - t - b) / 2); c.rotate(-Math.PI / 2); c.fillText("fraction at " + opts.mode, 0, 0);
    c.restore();
    c.setLineDash([5, 4]); c.strokeStyle = "#000"; c.beginPath(); c.moveTo(X(0), Y(w)); c.lineTo(X(T), Y(w)); c.stroke();
    c.setLineDash([3, 2]); c.strokeStyle = "rgb(44,160,44)"; c.lineWidth = 2; c.beginPath();  // each level's equilibrium
    for (var i = 0; i < eq.length; i++) {
      c.moveTo(X(i * opts.stepsEach), Y(eq[i])); c.lineTo(X((i + 1) * opts.stepsEach), Y(eq[i]));
    }
    c.stroke(); c.setLineDash([]); c.lineWidth = 1;
    opts.traces.forEach(function (tr) {
      c.strokeStyle = tr.color; c.lineWidth = 1.5; c.beginPath();
      tr.points.forEach(function (p, j) { if (j) c.lineTo(X(p[0]), Y(p[1])); else c.moveTo(X(p[0]), Y(p[1])); });
      c.stroke(); c.lineWidth = 1;
    });
    var items = opts.traces.map(function (tr) { return [tr.name, tr.color]; }), x = l + 6;
    if (eq.length) items.push(["level equilibrium", "rgb(44,160,44)"]);
    items.push([opts.weightName || "weight", "#000"]);
    c.textAlign = "left"; c.textBaseline = "top"; c.font = "11px sans-serif";
    items.forEach(function (it) { c.fillStyle = it[1]; c.fillText(it[0], x, t + 4); x += c.measureText(it[0]).width + 12; });
  };

  /* ---------- what the samplers print ---------- */

  /** How widely the finite points spread around their nearest component mean
   * (ncsn_edu.toy.distributions.spread_around_modes): the coordinates of the offsets x - mu_k(x)
   * pooled, {variance (their mean square), variance_se = sqrt((m4 - variance^2) / count) with m4 the
   * mean fourth power, std, std_se = variance_se / (2 std) (the delta method), count (coordinates)}. */
  L.spreadAroundModes = function (mix, pts, n) {
    var s2 = 0, s4 = 0, m = 0;
    for (var i = 0; i < n; i++) {
      var x = pts[2 * i], y = pts[2 * i + 1];
      if (!isFinite(x) || !isFinite(y)) continue;
      var k = mix.nearest(x, y), dx = x - mix.means[k][0], dy = y - mix.means[k][1];
      s2 += dx * dx + dy * dy; s4 += dx * dx * dx * dx + dy * dy * dy * dy; m += 2;
    }
    if (!m) return {variance: NaN, variance_se: NaN, std: NaN, std_se: NaN, count: 0};
    var v = s2 / m, vse = Math.sqrt(Math.max(s4 / m - v * v, 0) / m), sd = Math.sqrt(v);
    return {variance: v, variance_se: vse, std: sd, std_se: sd > 0 ? vse / (2 * sd) : NaN, count: m};
  };
  L.fmt = function (v, d) { return isFinite(v) ? v.toFixed(d === undefined ? 3 : d) : String(v); };

  /* ---------- one small style sheet for every live figure, added once per page ---------- */

  var CSS = [
    ".ncsn-live{margin:0.8em 0 1.2em 0;font-family:sans-serif;font-size:14px}",
    ".ncsn-live-title{font-weight:bold;margin-bottom:0.4em}",
    ".ncsn-live-row{display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start}",
    ".ncsn-live-panel{margin:0;flex:1 1 300px;max-width:460px;min-width:0}",
    ".ncsn-live-panel figcaption{font-size:12px;color:#444;margin-top:2px}",
    ".ncsn-live-side{flex:1 1 260px;min-width:0}",
    ".ncsn-live-control{display:flex;align-items:center;gap:6px;margin:4px 0;flex-wrap:wrap}",
    ".ncsn-live-control label{min-width:7.5em}",
    ".ncsn-live-control input[type=range]{flex:1 1 140px;min-width:100px}",
    ".ncsn-live-control output{font-family:monospace;min-width:4.5em}",
    ".ncsn-live-buttons{margin:6px 0;display:flex;gap:6px;flex-wrap:wrap}",
    ".ncsn-live-button{padding:3px 10px;font-size:13px;cursor:pointer}",
    ".ncsn-live-hint{font-size:12px;color:#555;margin:4px 0}",
    ".ncsn-live-stats{font-size:12px;line-height:1.35;white-space:pre-wrap;background:#f6f6f6;padding:6px;margin:4px 0;overflow-x:auto}",
    ".ncsn-live canvas{cursor:crosshair}"
  ].join("\n");
  L.addStyle = function () {
    var d = global.document;
    if (d.getElementById("ncsn-live-style")) return;
    var st = d.createElement("style");
    st.id = "ncsn-live-style"; st.textContent = CSS;
    (d.head || d.body).appendChild(st);
  };

  /* ---------- mounting ---------- */

  /** Build the figure in the element `rootId` from its JSON settings; keep the static picture on failure. */
  L.mount = function (rootId) {
    var root = global.document.getElementById(rootId);
    if (!root || root.getAttribute("data-mounted")) return;
    root.setAttribute("data-mounted", "1");
    L.addStyle();
    var cfg = JSON.parse(root.querySelector("script.ncsn-live-config").textContent);
    var ui = root.querySelector(".ncsn-live-ui"), fallback = root.querySelector(".ncsn-live-fallback");
    var make = L.figures[cfg.kind];
    if (!make) throw new Error("ncsn live figure: unknown kind " + cfg.kind);
    ui.style.display = "";
    var fig = make(ui, cfg, root);
    if (fallback) fallback.style.display = "none";
    root.figure = fig;
    root.state = function () { return JSON.stringify(fig.state()); };
    return fig;
  };
})(typeof window !== "undefined" ? window : this);
