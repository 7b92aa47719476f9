/* ncsn-edu live figures on MNIST (chapters 10 and 11): the book's score network runs in the reader's
 * browser with onnxruntime-web's WebAssembly backend, loaded once per site from _static/ort/, with the
 * models listed in _static/ncsn_edu/models.json (ncsn_edu.figures.live_images emits the figures;
 * the site's build puts those files in place). Three kinds:
 *   mnist_denoise   a test digit (or one the reader draws), noise of any sigma, the score s(x~, sigma)
 *                   as an image and the one-step denoised x~ + sigma^2 s (Tweedie), with the error
 *                   against the clean digit printed;
 *   mnist_generate  annealed Langevin dynamics (Algorithm 1) on 4 to 16 digits, one frame per step,
 *                   or the last level alone (the appendix's single-sigma baseline);
 *   mnist_inpaint   Algorithm 2 on a test digit under a mask that the reader paints, several
 *                   completions side by side with the digit classifier's reading of each.
 * The sampler is core.js's AnnealedRun (the toy figures' loop, with its seeded generator); only the
 * network call goes to onnxruntime, which answers asynchronously: each step asks run.next() for its
 * level, awaits the network, then calls run.apply(scores). The page stays responsive: one network
 * call per animation frame. The network sees float32 (as the package's sampler); the chain is kept
 * in float64, and a pixel beyond float32's range is marked not a number, as it would be in PyTorch.
 * Where onnxruntime cannot run (a page opened from file://, a failed load) the static picture stays,
 * with one line saying how to get the figure live (serve the site over http).
 * A kind reads its settings from `cfg` only (the defaults live in Python).
 */
(function (global) {
  "use strict";
  var L = global.NCSNLive, D = 784, SIDE = 28;
  if (L.onnx) return;
  L.onnx = {};

  /* ---------- the site's shared files: onnxruntime, the manifest, the models ---------- */

  /** The URL of the site's _static/ folder: from a script or style sheet of the page that lives
   * there (a Sphinx page has several), else `fallback` (relative to the page). */
  L.onnx.staticBase = function (fallback) {
    var d = global.document, nodes = d.querySelectorAll("script[src], link[href]");
    for (var i = 0; i < nodes.length; i++) {
      var u = nodes[i].src || nodes[i].href || "", k = u.indexOf("/_static/");
      if (k >= 0 && u.indexOf(global.location.origin) === 0) return u.slice(0, k + 9);
    }
    return new global.URL(fallback, d.baseURI).href;
  };
  var ortPromise = null, manifestPromises = {}, sessionPromises = {};
  /** onnxruntime-web (the WebAssembly build), loaded once per page from base + "ort/". */
  L.onnx.runtime = function (base) {
    if (ortPromise) return ortPromise;
    ortPromise = new Promise(function (resolve, reject) {
      if (global.ort && global.ort.InferenceSession) { resolve(global.ort); return; }
      var sc = global.document.createElement("script");
      sc.src = base + "ort/ort.wasm.min.js";
      sc.onload = function () {
        if (global.ort && global.ort.InferenceSession) resolve(global.ort);
        else reject(new Error("onnxruntime-web did not define ort"));
      };
      sc.onerror = function () { reject(new Error("could not load " + sc.src)); };
      global.document.head.appendChild(sc);
    }).then(function (ort) {
      ort.env.wasm.wasmPaths = base + "ort/";
      ort.env.wasm.numThreads = 1;  // threads need a cross-origin-isolated page; one is what every server gives
      // onnxruntime in a worker of its own (it loads ort.wasm.min.js there, then the .mjs and .wasm of
      // wasmPaths): creating a session compiles the WebAssembly and the model, which held the page's
      // only thread for 11-18 s (headless Chromium, a loaded 2-core machine); in the worker it cannot
      // freeze the page, and neither can a network call
      ort.env.wasm.proxy = true;
      ort.env.logLevel = "error";
      return ort;
    });
    return ortPromise;
  };
  /** The site's list of models (models.json), read once. */
  L.onnx.manifest = function (base) {
    var url = base + "ncsn_edu/models.json";
    if (!manifestPromises[url]) {
      manifestPromises[url] = global.fetch(url).then(function (r) {
        if (!r.ok) throw new Error("could not read " + url + " (HTTP " + r.status + ")");
        return r.json();
      }).then(function (m) { return Array.isArray(m) ? {models: m} : m; });
    }
    return manifestPromises[url];
  };
  /** An inference session for the model file `file` (under base + "ncsn_edu/"), made once per page. */
  L.onnx.session = function (base, file) {
    var url = base + "ncsn_edu/" + file;
    if (!sessionPromises[url]) {
      sessionPromises[url] = L.onnx.runtime(base).then(function (ort) {
        return ort.InferenceSession.create(url, {executionProviders: ["wasm"], graphOptimizationLevel: "all"});
      });
    }
    return sessionPromises[url];
  };

  /** A score network of the manifest (ncsn_edu.images.onnx_export.write_site_assets): entry = {file,
   * name, conditioning: "labels" (the level index) or "sigma" (any sigma; output already divided by it), sigmas}. */
  function ScoreNet(ort, session, entry) {
    this.ort = ort; this.session = session; this.entry = entry;
    this.sigmas = entry.sigmas.map(Number); this.conditioning = entry.conditioning;
    this.calls = 0;  // every call
    this.resetSpeed();
  }
  /** Forget the measured speed (a new batch size or model): evals, images and ms count the calls
   * after the next one, whose time (the first call at a batch size warms up the WebAssembly) is left out. */
  ScoreNet.prototype.resetSpeed = function () { this.evals = 0; this.images = 0; this.ms = 0; this.warm = false; };
  /** The index of the level nearest to sigma in log sigma (the level-conditioned network knows only these). */
  ScoreNet.prototype.nearestLevel = function (sigma) {
    var best = 0, bd = Infinity;
    for (var i = 0; i < this.sigmas.length; i++) {
      var d = Math.abs(Math.log(this.sigmas[i]) - Math.log(sigma));
      if (d < bd) { bd = d; best = i; }
    }
    return best;
  };
  /** Images per network call. onnxruntime runs in its proxy worker (L.onnx.runtime), so a call no
   * longer holds the page's thread; a batch still goes as calls of 4 with a pause between them (the
   * page's thread held them before the proxy: 4 images took 0.24 s and 16 took 0.94 s per call in
   * headless Chromium on a busy 2-core machine, the same rate per image; through the worker an
   * evaluation of 8 images took 407 ms against 439 ms on the page's thread, measured in turn). */
  var CHUNK = 4;
  /** Scores s(x, sigma) of n images x (n * 784 numbers, any array type) at level index `level`
   * (level-conditioned) or at `sigma` (sigma-conditioned): a promise of a Float32Array. */
  ScoreNet.prototype.score = function (x, n, level, sigma) {
    var self = this, out = new Float32Array(n * D), t0 = global.performance.now();
    var x32 = x instanceof Float32Array ? x : Float32Array.from(x.subarray ? x.subarray(0, n * D) : x);
    function from(i) {
      if (i >= n) {
        self.calls += 1;
        if (self.warm) { self.evals += 1; self.images += n; self.ms += global.performance.now() - t0; } else self.warm = true;
        return Promise.resolve(out);
      }
      var m = Math.min(CHUNK, n - i);
      return self.run(x32.slice(i * D, (i + m) * D), m, level, sigma).then(function (s) {
        out.set(s, i * D);
        if (i + m >= n) return from(n);
        return new Promise(function (resolve) { global.setTimeout(resolve, 0); }).then(function () { return from(i + m); });
      });
    }
    return from(0);
  };
  /** One call of the network on n images (Float32Array x32). */
  ScoreNet.prototype.run = function (x32, n, level, sigma) {
    var ort = this.ort, feeds = {}, names = this.session.inputNames, self = this;
    feeds[names[0]] = new ort.Tensor("float32", x32, [n, 1, SIDE, SIDE]);
    if (this.conditioning !== "sigma") {
      var lab = new global.BigInt64Array(n);
      for (var i = 0; i < n; i++) lab[i] = global.BigInt(level);
      feeds[names[1]] = new ort.Tensor("int64", lab, [n]);
    } else {
      feeds[names[1]] = new ort.Tensor("float32", new Float32Array(n).fill(sigma), [n]);
    }
    return this.session.run(feeds).then(function (out) { return out[self.session.outputNames[0]].data; });
  };
  L.onnx.ScoreNet = ScoreNet;

  /** The digit classifier: a promise of [{digit, confidence}] for n images (softmax of its logits). */
  function Classifier(ort, session) { this.ort = ort; this.session = session; }
  Classifier.prototype.read = function (x, n) {
    var feeds = {}, self = this;
    var x32 = new Float32Array(n * D);
    for (var j = 0; j < n * D; j++) x32[j] = Math.min(Math.max(isFinite(x[j]) ? x[j] : 0, 0), 1);  // as shown
    feeds[this.session.inputNames[0]] = new this.ort.Tensor("float32", x32, [n, 1, SIDE, SIDE]);
    return this.session.run(feeds).then(function (out) {
      var z = out[self.session.outputNames[0]].data, res = [];
      for (var i = 0; i < n; i++) {
        var mx = -Infinity, s = 0, best = 0, k;
        for (k = 0; k < 10; k++) if (z[10 * i + k] > mx) { mx = z[10 * i + k]; best = k; }
        for (k = 0; k < 10; k++) s += Math.exp(z[10 * i + k] - mx);
        res.push({digit: best, confidence: 1 / s});
      }
      return res;
    });
  };

  /* ---------- numbers ---------- */

  /** Pixels beyond float32's range become not a number (the package samples in float32). Returns
   * how many images hold a pixel that is not finite. */
  L.onnx.loseOverflow = function (x, n) {
    var bad = 0, big = 3.4028234663852886e38;
    for (var i = 0; i < n; i++) {
      var off = i * D, broken = false;
      for (var j = 0; j < D; j++) if (!(Math.abs(x[off + j]) <= big)) { x[off + j] = NaN; broken = true; }
      if (broken) bad += 1;
    }
    return bad;
  };
  /** Root-mean-square of a - b over the entries (per pixel). */
  function rms(a, b, count) {
    var s = 0;
    for (var j = 0; j < count; j++) { var d = a[j] - (b ? b[j] : 0); s += d * d; }
    return Math.sqrt(s / count);
  }
  L.onnx.rms = rms;
  /** count of L's level indices spread evenly over nLevels, first and last included (as chapter 9's figure). */
  function levelSubset(nLevels, count) {
    count = Math.max(1, Math.min(nLevels, Math.round(count)));
    if (count === 1) return [nLevels - 1];
    var out = [];
    for (var j = 0; j < count; j++) out.push(Math.round(j * (nLevels - 1) / (count - 1)));
    return out;
  }
  /** uint8 digits (base64, N x 784) as float64 images in [0, 1]. */
  function decodeDigits(b64) {
    var bin = global.atob(b64), out = new Float64Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i) / 255;
    return out;
  }
  /** n uniform starts in [0, 1) from rng (torch.rand's role in the package). */
  function uniformImages(rng, n) {
    var x = new Float64Array(n * D);
    for (var j = 0; j < n * D; j++) x[j] = rng.uniform();
    return x;
  }

  /* ---------- drawing 28 x 28 images ---------- */

  /** Grey (0 black, 1 white, clipped: as show_grid draws), or a diverging map for signed values
   * (blue negative, white 0, red positive, scaled by vmax). Pixels that are not finite show magenta. */
  function colour(v, map, vmax) {
    if (!isFinite(v)) return [255, 0, 255];
    if (map === "diverging") {
      var t = Math.max(-1, Math.min(1, v / vmax));
      return t >= 0 ? [255, Math.round(255 * (1 - t)), Math.round(255 * (1 - t))] :
        [Math.round(255 * (1 + t)), Math.round(255 * (1 + t)), 255];
    }
    var g = Math.round(255 * Math.max(0, Math.min(1, v)));
    return [g, g, g];
  }
  /** Draw image k of `data` (784 numbers from offset 784 k) at (x0, y0) of canvas context c, `scale` pixels per pixel. */
  function drawImage(c, data, k, x0, y0, scale, map, vmax) {
    var off = global.document.createElement("canvas");
    off.width = SIDE; off.height = SIDE;
    var oc = off.getContext("2d"), img = oc.createImageData(SIDE, SIDE);
    for (var j = 0; j < D; j++) {
      var col = colour(data[k * D + j], map, vmax);
      img.data[4 * j] = col[0]; img.data[4 * j + 1] = col[1]; img.data[4 * j + 2] = col[2]; img.data[4 * j + 3] = 255;
    }
    oc.putImageData(img, 0, 0);
    c.imageSmoothingEnabled = false;
    c.drawImage(off, x0, y0, SIDE * scale, SIDE * scale);
  }
  L.onnx.drawImage = drawImage;
  /** A grid of n images on `canvas` (cols per row, `gap` pixels between them), with a caption under each. */
  function drawGrid(canvas, data, n, cols, opts) {
    var c = canvas.getContext("2d"), sc = opts.scale, cap = opts.captions ? 16 : 0, gap = 4, rows = Math.ceil(n / cols);
    var w = cols * SIDE * sc + (cols - 1) * gap, h = rows * (SIDE * sc + cap) + (rows - 1) * gap;
    if (canvas.width !== w || canvas.height !== h) { canvas.width = w; canvas.height = h; }
    c.setTransform(1, 0, 0, 1, 0, 0);
    c.fillStyle = "#fff"; c.fillRect(0, 0, w, h);
    for (var k = 0; k < n; k++) {
      var x0 = (k % cols) * (SIDE * sc + gap), y0 = Math.floor(k / cols) * (SIDE * sc + cap + gap);
      drawImage(c, data, k, x0, y0, sc, opts.map, opts.vmax);
      if (cap && opts.captions[k]) {
        c.fillStyle = "#222"; c.font = "12px sans-serif"; c.textAlign = "center"; c.textBaseline = "top";
        c.fillText(opts.captions[k], x0 + SIDE * sc / 2, y0 + SIDE * sc + 2);
      }
    }
  }
  /** A canvas in a small captioned panel (the image panels are narrower than the toys' plots). */
  function panel(parent, w, h, caption) {
    var box = L.el("figure", {"class": "ncsn-live-panel ncsn-mnist-panel"}, parent);
    box.style.flex = "0 1 " + w + "px";
    var c = L.el("canvas", {width: w, height: h, role: "img", "aria-label": caption}, box);
    c.style.width = "100%"; c.style.maxWidth = w + "px"; c.style.height = "auto"; c.style.display = "block";
    c.style.touchAction = "none";  // a finger paints instead of scrolling the page
    L.el("figcaption", {}, box, caption);
    return c;
  }
  /** The pixel (0..783) under a pointer event on an image canvas drawn at `scale`, or -1. */
  function pixelAt(canvas, ev, scale) {
    var r = canvas.getBoundingClientRect();
    var cx = (ev.clientX - r.left) * canvas.width / r.width, cy = (ev.clientY - r.top) * canvas.height / r.height;
    var i = Math.floor(cy / scale), j = Math.floor(cx / scale);
    return i >= 0 && i < SIDE && j >= 0 && j < SIDE ? i * SIDE + j : -1;
  }
  /** Mouse and touch painting on an image canvas: paint(pixel, first) for every pixel the pointer
   * crosses while pressed (pointer events serve both; the canvas has touch-action none). */
  function painter(canvas, scale, paint, done) {
    var down = false;
    canvas.addEventListener("pointerdown", function (ev) {
      down = true; if (canvas.setPointerCapture) try { canvas.setPointerCapture(ev.pointerId); } catch (e) { /* synthetic */ }
      var p = pixelAt(canvas, ev, scale); if (p >= 0) paint(p, true); ev.preventDefault();
    });
    canvas.addEventListener("pointermove", function (ev) {
      if (!down) return;
      var p = pixelAt(canvas, ev, scale); if (p >= 0) paint(p, false); ev.preventDefault();
    });
    function up() { if (down) { down = false; if (done) done(); } }
    canvas.addEventListener("pointerup", up);
    canvas.addEventListener("pointercancel", up);
    canvas.addEventListener("pointerleave", up);
  }
  /** The pixels within `radius` of pixel p (a round brush). */
  function brush(p, radius) {
    var out = [], i0 = Math.floor(p / SIDE), j0 = p % SIDE, r = Math.ceil(radius);
    for (var di = -r; di <= r; di++) for (var dj = -r; dj <= r; dj++) {
      var i = i0 + di, j = j0 + dj;
      if (i >= 0 && i < SIDE && j >= 0 && j < SIDE && di * di + dj * dj <= radius * radius) out.push([i * SIDE + j, Math.sqrt(di * di + dj * dj)]);
    }
    return out;
  }

  /* ---------- the chain: one network call per frame, never two at once ---------- */

  /** Runs stepOnce() (a promise of true while there is more to do) again and again while started,
   * letting the page draw between calls; onchange(running) hears starts and stops (core.js's runButton). */
  function Loop(stepOnce, onError) {
    var active = false, busy = false, self = this;
    function kick() {
      if (!active || busy) return;
      busy = true;
      stepOnce().then(function (more) {
        busy = false;
        if (!more) { self.stop(); return; }
        if (active) global.requestAnimationFrame(kick);
      }, function (err) { busy = false; self.stop(); onError(err); });
    }
    this.start = function () { if (!active) { active = true; if (self.onchange) self.onchange(true); } kick(); };
    this.stop = function () { if (active) { active = false; if (self.onchange) self.onchange(false); } };
    this.running = function () { return active; };
    this.busy = function () { return busy; };
    this.onchange = null;
  }

  /* ---------- the controls every kind shares ---------- */

  /** A menu that never makes the figure wider than a phone's screen. */
  function narrow(ctl) { ctl.input.style.maxWidth = "100%"; ctl.input.style.minWidth = "0"; return ctl; }
  function modelMenu(parent, manifest, cfg, onchange) {
    var opts = manifest.models.map(function (m) { return [m.name + (m.conditioning === "sigma" ? " (any \u03c3)" :
      " (" + m.sigmas.length + " levels)"), m.file]; });
    return narrow(L.select(parent, "model", opts, cfg.model, onchange));
  }
  function epsSlider(parent, cfg, onchange) {
    return L.slider(parent, {label: "step \u03b5", name: "eps", log: true, min: cfg.eps_min, max: cfg.eps_max,
      value: cfg.eps, round: L.round2, format: function (v) { return v.toExponential(1); }, onchange: onchange});
  }
  function stepsSlider(parent, cfg, onchange) {
    return L.slider(parent, {label: "steps per level T", name: "n_steps_each", log: true, min: 1, max: cfg.steps_max,
      value: cfg.n_steps_each, round: function (v) { return Math.max(1, Math.round(L.round2(v))); },
      format: function (v) { return String(Math.round(v)); }, onchange: onchange});
  }
  function conventionMenu(parent, cfg, onchange) {
    return narrow(L.select(parent, "step convention", [["paper: \u03b1\u1d62/2, \u221a\u03b1\u1d62", "paper"],
      ["official code: a\u1d62, \u221a(2a\u1d62)", "code"]], cfg.convention, onchange));
  }
  function seedSlider(parent, cfg, onchange) {
    return L.slider(parent, {label: "seed", name: "seed", min: 0, max: 99, step: 1, value: cfg.seed,
      format: function (v) { return String(Math.round(v)); }, onchange: onchange});
  }
  /** The name of a step's drift coefficient (the factor of the score) in a step convention: the
   * paper's alpha_i/2, the official code's a_i (as the convention menu and langevin.js name them). */
  function driftName(convention) { return convention === "code" ? "a\u1d62" : "\u03b1\u1d62/2"; }
  /** What the figure says when the chain has diverged (drift d = a_i or alpha_i/2: x - d (x - m)/sigma_i^2
   * grows when d/sigma_i^2 > 2, that is a_i/sigma_i^2 > 2 or alpha_i/sigma_i^2 > 4). */
  function divergedText(t, bad, n, convention) {
    var limit = convention === "code" ? "a\u1d62/\u03c3\u1d62\u00b2 > 2" : "\u03b1\u1d62/\u03c3\u1d62\u00b2 > 4";
    return "the chain diverged at step " + t + ": " + bad + " of " + n + " images hold pixels that are not finite " +
      "numbers (magenta). The step is too large: a Langevin step x \u2190 x + " + driftName(convention) + " s + noise " +
      "overshoots when " + driftName(convention) + " is above about \u03c3\u1d62\u00b2 (x \u2212 " + driftName(convention) +
      " (x \u2212 m)/\u03c3\u1d62\u00b2 grows when " + limit + "), the pixels grow past float32's range and become " +
      "infinite, then not a number. Lower \u03b5 and press Reset.";
  }
  function speedText(net) {
    if (!net.evals) return "";
    return "network: " + L.fmt(1000 * net.images / net.ms, 1) + " image evaluations/s in this page\n(" +
      L.fmt(net.ms / net.evals, 0) + " ms per evaluation of " + L.fmt(net.images / net.evals, 0) + " image" +
      (net.images === net.evals ? "" : "s") + ")";
  }

  /* ---------- kind "mnist_denoise" ---------- */

  L.figures.mnist_denoise = function (ui, cfg, env) {
    var digits = decodeDigits(cfg.digits), count = digits.length / D, net = env.net, rng = new L.Rng(cfg.seed);
    var clean = new Float64Array(D), z = new Float64Array(D), noisy = new Float64Array(D), s = new Float32Array(D);
    var den = new Float64Array(D), err = new Float64Array(D), drawn = false, pending = null, busy = false, last = null;
    var noiseSeed = cfg.seed;

    var row = L.el("div", {"class": "ncsn-live-row"}, ui), sc = 5, size = SIDE * sc;
    var cClean = panel(row, size, size, "clean x (draw on it)"), cNoisy = panel(row, size, size, "noisy x\u0303 = x + \u03c3z");
    var cScore = panel(row, size, size, "score s\u03b8(x\u0303, \u03c3\u1d62): blue < 0 < red");
    var cDen = panel(row, size, size, "denoised x\u0303 + \u03c3\u00b2s\u03b8");
    var cErr = panel(row, size, size, "error |x\u0303 + \u03c3\u00b2s\u03b8 \u2212 x|");
    var side = L.el("div", {"class": "ncsn-live-side"}, ui);
    // a model's session may take seconds to make: the answer for a model no longer chosen is dropped
    var modelCtl = modelMenu(side, env.manifest, cfg, function (f) {
      env.switchModel(f).then(function (m) { if (modelCtl.get() === f) { net = m; update(); } });
    });
    var digitCtl = L.slider(side, {label: "test digit", name: "index", min: 0, max: count - 1, step: 1, value: cfg.index,
      format: function (v) { return "#" + Math.round(v) + " (a " + cfg.digit_labels[Math.round(v)] + ")"; },
      onchange: function () { drawn = false; load(); update(); }});
    var sigmaCtl = L.slider(side, {label: "noise \u03c3", name: "sigma", log: true, min: cfg.sigma_min, max: cfg.sigma_max,
      value: cfg.sigma, format: function (v) { return v.toPrecision(3); }, onchange: update});
    var buttons = L.el("div", {"class": "ncsn-live-buttons"}, side);
    L.button(buttons, "New noise", function () { noiseSeed += 1; draw_noise(); update(); });
    L.button(buttons, "Blank: draw a digit", function () { clean.fill(0); drawn = true; update(); });
    L.el("p", {"class": "ncsn-live-hint"}, side, "Drag on the clean digit (mouse or finger) to draw strokes.");
    var stats = L.el("pre", {"class": "ncsn-live-stats", "aria-live": "polite"}, ui);

    function load() {
      var k = Math.round(digitCtl.get());
      for (var j = 0; j < D; j++) clean[j] = digits[k * D + j];
    }
    function draw_noise() { rng = new L.Rng(noiseSeed); rng.normals(z, D); }
    painter(cClean, sc, function (p) {
      brush(p, 1.3).forEach(function (q) { clean[q[0]] = Math.max(clean[q[0]], q[1] < 0.8 ? 1 : 0.6); });
      drawn = true; drawGrid(cClean, clean, 1, 1, {scale: sc, map: "grey"});
    }, function () { update(); });

    function update() {
      var sigma = sigmaCtl.get(), level = net.conditioning === "sigma" ? null : net.nearestLevel(sigma), j;
      for (j = 0; j < D; j++) noisy[j] = clean[j] + sigma * z[j];
      drawGrid(cClean, clean, 1, 1, {scale: sc, map: "grey"});
      drawGrid(cNoisy, noisy, 1, 1, {scale: sc, map: "grey"});
      var job = {sigma: sigma, level: level, x: Float64Array.from(noisy), clean: Float64Array.from(clean)};
      if (busy) { pending = job; return; }
      run(job);
    }
    function run(job) {
      busy = true;
      return net.score(job.x, 1, job.level, job.sigma).then(function (out) {  // the network sees float32
        busy = false;
        s.set(out);
        show(job);
        if (pending) { var p = pending; pending = null; run(p); }
      }, function (e) { busy = false; env.fail(e); });
    }
    function show(job) {
      var sigma = job.sigma, big = 0, j;
      for (j = 0; j < D; j++) {
        den[j] = job.x[j] + sigma * sigma * s[j];
        err[j] = Math.abs(den[j] - job.clean[j]);
        if (Math.abs(s[j]) > big) big = Math.abs(s[j]);
      }
      drawGrid(cScore, s, 1, 1, {scale: sc, map: "diverging", vmax: big || 1});
      drawGrid(cDen, den, 1, 1, {scale: sc, map: "grey"});
      drawGrid(cErr, err, 1, 1, {scale: sc, map: "grey"});
      var eNoisy = rms(job.x, job.clean, D), eDen = rms(den, job.clean, D), sRms = rms(s, null, D);
      var lvl = job.level === null ? "the network takes \u03c3 itself" : "the network knows only its " + net.sigmas.length +
        " levels: it runs at the nearest in log \u03c3, level " + (job.level + 1) + ", \u03c3\u1d62 = " +
        net.sigmas[job.level].toPrecision(3) + " (the noise uses the slider's \u03c3)";
      stats.textContent = "\u03c3 = " + sigma.toPrecision(3) + ";  " + lvl + "\n" +
        "per-pixel error against the clean digit (root mean square over 784 pixels):\n" +
        "  noisy x\u0303: " + L.fmt(eNoisy, 4) + " (\u03c3 = " + sigma.toPrecision(3) + " expected)\n" +
        "  denoised x\u0303 + \u03c3\u00b2s\u03b8: " + L.fmt(eDen, 4) + " (" + L.fmt(eNoisy / eDen, 2) + " times smaller)\n" +
        "  largest pixel error: " + L.fmt(Math.max.apply(null, Array.from(err)), 3) + "\n" +
        "score: root mean square " + L.fmt(sRms, 2) + " per pixel, largest |s| " + L.fmt(big, 1) +
        " (1/\u03c3 = " + L.fmt(1 / sigma, 2) + ": the size of z/\u03c3)\n" + speedText(net);
      last = {sigma: sigma, level: job.level === null ? null : job.level, sigma_level: job.level === null ? sigma :
        net.sigmas[job.level], rms_noisy: eNoisy, rms_denoised: eDen, score_rms: sRms, score_max: big};
    }
    load(); draw_noise(); update();
    return {
      state: function () {
        var st = last ? JSON.parse(JSON.stringify(last)) : {};
        st.kind = "mnist_denoise"; st.model = modelCtl.get(); st.index = Math.round(digitCtl.get()); st.drawn = drawn;
        st.noise_seed = noiseSeed; st.busy = busy || !!pending; st.evals = net.calls;
        return st;
      },
      /** The noisy input, the scores and the denoised image shown now (for the tests). */
      arrays: function () { return {noisy: Array.from(noisy), clean: Array.from(clean), z: Array.from(z), score: Array.from(s),
        denoised: Array.from(den)}; },
      idle: function () { return !busy && !pending; }
    };
  };

  /* ---------- kinds "mnist_generate" and "mnist_inpaint": annealed Langevin in the page ---------- */

  /** The schedule of the sampler: Algorithm 1 over L of the network's levels ("annealed"), or one
   * level for L x T steps, plain Langevin with step eps: the NCSN's last level ("last") or the
   * appendix's baseline network, trained at sigma = 0.01 alone ("single", `net` is then the baseline). */
  function schedule(net, mode, count, T) {
    var s = net.sigmas, levels;
    if (mode !== "annealed") return {levels: [s.length - 1], sigmas: [s[s.length - 1]], T: Math.round(count) * T};
    levels = levelSubset(s.length, count);
    return {levels: levels, sigmas: levels.map(function (i) { return s[i]; }), T: T};
  }

  /** Pixels beyond +-FAR (or 1 + 6 sigma_i at a level of sigma_i > 1.5): the chain has left the data's
   * range [0, 1]. With a step whose drift is at least sigma_i^2 (it overshoots the nearest clean image)
   * the step is too large; with a smaller one the chain still holds the noise of an earlier, larger
   * level (too few steps since: L levels, T each, are too few to follow the noise down). */
  var FAR = 10;

  function sampler(ui, cfg, env, inpaint) {
    var outOfRange = false, net = env.net, n = 0, run = null, sch = null, bad = 0, readings = null, reading = false, starts = null;
    // loading: a promise while the baseline's session is made; batchKey: batch size and network of the
    // speed measured; pressedDone: Run was pressed on a finished chain; readAgain: a reading to take next
    var unsettled = false, switching = null, loading = null, batchKey = null, pressedDone = false, readAgain = null, firstSettings = null;
    var digits = inpaint ? decodeDigits(cfg.digits) : null, count = inpaint ? digits.length / D : 0;
    var known = new Float64Array(D), mask = new Uint8Array(D), maskSet = false;
    var row = L.el("div", {"class": "ncsn-live-row"}, ui), sc = 3, cMask = null, brushMode = "hide";
    if (inpaint) {
      cMask = panel(row, SIDE * 6, SIDE * 6, "the digit: paint the pixels to fill in (hidden: blue)");
      // the painted digit grows into free room, to twice its size (a phone's whole width: 12 screen
      // pixels per pixel for a finger, where 6 were hard to hit)
      cMask.parentNode.style.flex = "1 1 " + SIDE * 6 + "px"; cMask.parentNode.style.maxWidth = SIDE * 12 + "px";
      cMask.style.maxWidth = "100%";
    }
    var gridBox = L.el("div", {}, row), cGrid = panel(gridBox, 4 * SIDE * sc + 12, 4 * SIDE * sc + 12,
      inpaint ? "completions by Algorithm 2 (under each, once finished: the classifier's reading)" :
        "the chains' current images (pixels shown clipped to [0, 1])");
    var side = L.el("div", {"class": "ncsn-live-side"}, ui);
    var modelCtl = modelMenu(side, env.manifest, cfg, function (f) {
      // making a session takes seconds (the worker runs no network call meanwhile): the box says so, and
      // the answer for a model no longer chosen (the menu changed again meanwhile) is dropped
      switching = f; draw();
      env.switchModel(f).then(function (m) {
        if (modelCtl.get() !== f) return;
        switching = null; net = m; defaults(); restart();
      }, function () { if (switching === f) switching = null; });
    });
    var digitCtl = null, modeCtl = null, nCtl;
    if (inpaint) {
      digitCtl = L.slider(side, {label: "test digit", name: "index", min: 0, max: count - 1, step: 1, value: cfg.index,
        format: function (v) { return "#" + Math.round(v) + " (a " + cfg.digit_labels[Math.round(v)] + ")"; }, onchange: restart});
      nCtl = L.slider(side, {label: "completions", name: "n_completions", min: 1, max: cfg.n_completions_max, step: 1,
        value: cfg.n_completions, format: function (v) { return String(Math.round(v)); }, onchange: restart});
    } else {
      var modes = [["annealed (Algorithm 1)", "annealed"], ["\u03c3_L alone (the model's last level)", "last"]];
      if (env.manifest.baseline) modes.push(["baseline trained at \u03c3 = " + baselineSigma() + " only", "single"]);
      modeCtl = narrow(L.select(side, "sampler", modes, cfg.mode, restart));
      nCtl = L.slider(side, {label: "digits", name: "n_images", min: 4, max: cfg.n_images_max, step: 1, value: cfg.n_images,
        format: function (v) { return String(Math.round(v)); }, onchange: restart});
    }
    var lCtl = L.slider(side, {label: "levels L", name: "n_levels", min: 1, max: net.sigmas.length, step: 1,
      value: net.sigmas.length, format: function (v) { return String(Math.round(v)); }, onchange: restart});
    var lLabel = lCtl.input.parentNode.querySelector("label");
    var tCtl = stepsSlider(side, cfg, restart), eCtl = epsSlider(side, cfg, restart), cCtl = conventionMenu(side, cfg, restart);
    var denoiseCtl = inpaint ? null : narrow(L.select(side, "final step", [["none (NCSN's sampler)", "off"],
      ["denoise: x + \u03c3_L\u00b2 s(x, \u03c3_L) (NCSNv2's)", "on"]], cfg.final_denoise ? "on" : "off", restart));
    var seedCtl = seedSlider(side, cfg, restart);
    var loop = new Loop(stepOnce, env.fail);
    var buttons = L.el("div", {"class": "ncsn-live-buttons"}, side);
    L.runButton(buttons, loop);
    L.button(buttons, "Reset", restart);
    if (inpaint) {
      var mb = L.el("div", {"class": "ncsn-live-buttons"}, side);
      L.button(mb, "Left half known", function () { presetMask("left"); });
      L.button(mb, "Hide all", function () { presetMask("all"); });
      L.button(mb, "Clear mask", function () { presetMask("none"); });
      var bCtl = L.select(side, "brush", [["hide (fill in)", "hide"], ["reveal (keep)", "reveal"]], "hide",
        function (v) { brushMode = v; });
      L.el("p", {"class": "ncsn-live-hint"}, side, "Paint on the digit with the mouse or a finger; the run restarts when you let go.");
      bCtl.input.setAttribute("name", "brush");
    }
    var stats = L.el("pre", {"class": "ncsn-live-stats", "aria-live": "polite"}, ui);

    /** The sampler settings of the model now chosen: the figure's own (Python's) for the model it
     * starts with, else that model's own sampler (its models.json entry), over all its levels. */
    function defaults() {
      var own = net.entry.file === cfg.model, smp = net.entry.sampler || {};
      function pick(mine, its) { return own || its === undefined ? mine : its; }
      eCtl.set(pick(cfg.eps, smp.eps)); tCtl.set(pick(cfg.n_steps_each, smp.n_steps_each));
      cCtl.set(pick(cfg.convention, smp.convention));
      if (denoiseCtl) denoiseCtl.set(pick(cfg.final_denoise, smp.final_denoise) ? "on" : "off");
      lCtl.input.max = net.sigmas.length; lCtl.set(net.sigmas.length);
    }
    function presetMask(which) {
      for (var j = 0; j < D; j++) mask[j] = which === "left" ? (j % SIDE < SIDE / 2 ? 1 : 0) : which === "all" ? 0 : 1;
      restart();
    }
    if (inpaint) {
      for (var j0 = 0; j0 < D; j0++) mask[j0] = cfg.mask.charAt(j0) === "1" ? 1 : 0;
      maskSet = true;
      painter(cMask, 6, function (p) {
        brush(p, 1.5).forEach(function (q) { mask[q[0]] = brushMode === "hide" ? 0 : 1; });
        drawMask();
      }, restart);
    }
    function drawMask() {
      var c = cMask.getContext("2d");
      drawGrid(cMask, known, 1, 1, {scale: 6, map: "grey"});
      c.fillStyle = "rgba(60,120,255,0.55)";
      for (var j = 0; j < D; j++) if (!mask[j]) c.fillRect((j % SIDE) * 6, Math.floor(j / SIDE) * 6, 6, 6);
    }
    function mode() { return modeCtl ? modeCtl.get() : "annealed"; }
    /** The baseline's one sigma, as its menu entry and texts name it. */
    function baselineSigma() {  // stored in float32 (0.0099999998): as its 4 significant digits say it
      var b = env.manifest.baseline; return b ? String(Number(Number(b.sigmas[0]).toPrecision(4))) : "";
    }
    function restart() {
      var wasRunning = loop.running();
      loop.stop();
      pressedDone = false;
      // with one level (sigma_L alone, or the baseline) L no longer counts levels: it only sets the steps, L x T
      lLabel.textContent = mode() === "annealed" ? "levels L" : "L (one \u03c3: L \u00d7 T steps)";
      if (mode() === "single" && !env.baseline) {  // the baseline's session is made on first use
        if (!loading) {
          loading = env.loadBaseline().then(function () { loading = null; restart(); if (wasRunning) loop.start(); },
            function () { loading = null; });
        }
        stats.textContent = "Loading the baseline network (trained at \u03c3 = " + baselineSigma() + " only) \u2026";
        return;
      }
      n = Math.round(nCtl.get());
      var key = n + " " + chainNet().entry.file;
      if (key !== batchKey) { chainNet().resetSpeed(); batchKey = key; }  // the speed of this batch size and network
      var rng = new L.Rng(Math.round(seedCtl.get()));
      sch = schedule(chainNet(), mode(), lCtl.get(), Math.round(tCtl.get()));
      var opts = {sigmas: sch.sigmas, eps: eCtl.get(), nStepsEach: sch.T, convention: cCtl.get(), n: n, rng: rng, dim: D};
      if (inpaint) {
        var k = Math.round(digitCtl.get()), all = new Float64Array(n * D), j, i;
        for (j = 0; j < D; j++) known[j] = digits[k * D + j];
        for (i = 0; i < n; i++) all.set(known, i * D);
        var x = uniformImages(rng, n);  // the package's init: uniform on [0, 1], then the known pixels
        for (i = 0; i < n * D; i++) if (mask[i % D]) x[i] = all[i];
        opts.known = all; opts.mask = mask; opts.x = x;
        drawMask();
      } else {
        opts.x = uniformImages(rng, n);
      }
      starts = Float64Array.from(opts.x);
      run = new L.AnnealedRun(opts);
      bad = 0; readings = null; readAgain = null;
      if (firstSettings === null) firstSettings = settingsText();
      draw();
      if (wasRunning) loop.start();
    }
    /** Whether the chain ends with NCSNv2's denoising step (the "final step" menu). */
    function denoising() { return !!denoiseCtl && denoiseCtl.get() === "on"; }
    /** One step: the network at the level of run.next(), awaited, then run.apply; after the last
     * Langevin step, the final denoising step x + sigma_L^2 s(x, sigma_L) when it is chosen (as
     * ncsn_edu.sampling.annealed_langevin_dynamics with final_denoise: no noise). */
    function stepOnce() {
      if (loading) return loading.then(function () { return true; });  // the baseline's session first
      var r = run, cur = r.next();
      if (bad || (!cur && (!denoising() || r.denoised))) {  // Run pressed on a finished chain: say so
        pressedDone = true; draw();
        return Promise.resolve(false);
      }
      if (!cur) {
        var last = r.sigmas.length - 1, sL = r.sigmas[last];
        return chainNet().score(r.x, r.n, sch.levels[last], sL).then(function (s) {
          if (r !== run) return true;
          for (var j = 0; j < r.n * D; j++) r.x[j] += sL * sL * s[j];
          r.denoised = true;
          bad = L.onnx.loseOverflow(r.x, r.n);
          draw();
          return false;
        });
      }
      return chainNet().score(r.x, r.n, sch.levels[cur.level], cur.sigma).then(function (s) {
        if (r !== run) return true;  // a control restarted the chain meanwhile: keep the loop going on the new one
        r.apply(s);
        bad = L.onnx.loseOverflow(r.x, r.n);
        var done = (r.t >= r.total && !denoising()) || bad > 0;
        if (inpaint && (done || r.t % r.nStepsEach === 0)) classify(r, done, cur.sigma);
        draw();
        return !done;
      });
    }
    /** The network the chain runs: the baseline in mode "single", else the chosen model. */
    function chainNet() { return mode() === "single" && env.baseline ? env.baseline : net; }
    /** The classifier's reading of the chains now, at the end of a level of noise sigma (final: of the
     * finished completions). One reading at a time; a reading asked for meanwhile comes next (the last
     * one asked for, so the finished completions are always read). */
    function classify(r, final, sigma) {
      if (!env.classifier) return;
      var job = {r: r, x: Float64Array.from(r.x), final: final, sigma: sigma};
      if (reading) { readAgain = job; return; }
      reading = true;
      env.classifier.read(job.x, r.n).then(function (res) {
        reading = false;
        if (r === run) { readings = {list: res, final: job.final, sigma: job.sigma}; draw(); }
        if (readAgain) { var next = readAgain; readAgain = null; if (next.r === run) classify(next.r, next.final, next.sigma); }
      }, function () { reading = false; });
    }
    /** The sampler's settings now, as the figure's title names them. */
    function settingsText() {
      var m = mode(), T = Math.round(tCtl.get());
      return (m === "single" ? "baseline network, \u03c3 = " + baselineSigma() + " alone, " + Math.round(lCtl.get()) * T +
        " steps" : net.entry.name + (m === "last" ? ", \u03c3_L alone, " + Math.round(lCtl.get()) * T + " steps" :
        ", L = " + Math.round(lCtl.get()) + ", T = " + T)) + ", \u03b5 = " + eCtl.get().toExponential(1) + " (" +
        (cCtl.get() === "code" ? "official code's" : "paper's") + " step)" + (denoising() ? ", then the denoising step" : "") +
        (inpaint ? ", " + Math.round(nCtl.get()) + " completions" : ", " + Math.round(nCtl.get()) + " digits");
    }
    /** The title states the figure's starting settings; once the controls change them it names the ones now. */
    function retitle() {
      if (!env.title || firstSettings === null) return;
      var now = settingsText();
      env.title.textContent = now === firstSettings ? env.titleText : env.titleText + " \u2014 settings now: " + now;
    }
    function knownCheck() {
      // Algorithm 2 keeps the known pixels at y = x + sigma_i z of the current level: the largest gap
      if (!run.known || run.yLevel < 0) return null;
      var g = 0;
      for (var j = 0; j < n * D; j++) if (mask[j % D]) g = Math.max(g, Math.abs(run.x[j] - run.y[j]));
      return g;
    }
    function draw() {
      var cols = n <= 4 ? n : n <= 8 ? 4 : 4, caps = null, final = !!readings && readings.final;
      if (inpaint) {
        cols = Math.min(n, 4);
        caps = [];  // under each completion: the reading of the finished completions only (noisy ones mean nothing)
        for (var i = 0; i < n; i++) caps.push(final ? readings.list[i].digit + " (" + readings.list[i].confidence.toFixed(2) + ")" : "");
      }
      drawGrid(cGrid, run.x, n, cols, {scale: sc, map: "grey", captions: caps});
      var lev = run.level(), sigma = run.sigmas[lev], c = L.stepCoefficients(run.eps, sigma, run.sigmas[run.sigmas.length - 1], run.convention);
      var m = mode(), cn = chainNet(), dn = driftName(run.convention);
      var head = (m === "single" ? "the baseline network (trained at \u03c3 = " + baselineSigma() + " only), plain Langevin " +
        "at that one \u03c3 for L \u00d7 T = " + run.total + " steps" : m === "last" ?
        "the model's last level alone, \u03c3_L (plain Langevin) for L \u00d7 T = " + run.total + " steps" :
        "level " + (lev + 1) + " of " + run.sigmas.length + " (network level " + (sch.levels[lev] + 1) + ")") +
        ", \u03c3 = " + sigma.toPrecision(3) + "\nstep " + run.t + " of " + run.total +
        (denoising() ? (run.denoised ? ", then the final denoising step x + \u03c3_L\u00b2 s: done" :
          " (then the final denoising step)") : "") + "\n" +
        "step: " + (run.convention === "code" ? "a\u1d62 = \u03b5\u03c3\u1d62\u00b2/\u03c3_L\u00b2 = " + c[0].toPrecision(3) +
          ";\n  x \u2190 x + a\u1d62 s + \u221a(2a\u1d62) z (official code)" : "\u03b1\u1d62 = \u03b5\u03c3\u1d62\u00b2/\u03c3_L\u00b2 = " +
          (2 * c[0]).toPrecision(3) + ";\n  x \u2190 x + \u03b1\u1d62/2 s + \u221a\u03b1\u1d62 z (paper)") + "\n";
      if (m === "single") {
        head += "Why the chains stay noise (the appendix's baseline): this network saw only digits with noise of size " +
          baselineSigma() + " in training, so it learned the scores near the digits and not far from them. The chains " +
          "start from uniform noise, far from every digit, where its scores are not learned: in the steps given, " +
          "Langevin at this one \u03c3 does not reach digits. Algorithm 1 starts at a large \u03c3, where the " +
          "scores are learned everywhere, and anneals down.\n";
      }
      var lo = Infinity, hi = -Infinity;
      for (var j = 0; j < n * D; j++) { var v = run.x[j]; if (isFinite(v)) { if (v < lo) lo = v; if (v > hi) hi = v; } }
      // the data lie in [0, 1], and at level i a chain holds them plus noise of size sigma_i: the largest
      // of 784 n normals is about 4.3 (n = 16), so 1 + 6 sigma_i bounds a chain that follows its level
      // the chains hold the noise of the level of the step just taken (after a level's last step, run.level()
      // names the next, smaller one already)
      var held = run.sigmas[run.t > 0 ? Math.min(Math.floor((run.t - 1) / run.nStepsEach), run.sigmas.length - 1) : lev];
      var farAt = Math.max(FAR, 1 + 6 * held), far = !bad && (hi > farAt || lo < -farAt);
      var ratio = c[0] / (sigma * sigma), overshoots = far && ratio >= 1;  // drift / sigma_i^2, the same at every level
      var body = bad ? divergedText(run.t, bad, n, run.convention) + "\n" : "pixel values now from " + L.fmt(lo, 2) + " to " +
        L.fmt(hi, 2) + " (data: 0 to 1" + (held > 0.3 && run.t > 0 ? ", plus noise of size \u03c3 = " + held.toPrecision(3) + " of the last step's level" : "") +
        ")\n" + (overshoots ? "the chains have left the data's range: the step is too large. A step moves x by " + dn +
        " s, about " + (run.convention === "code" ? "a\u1d62/\u03c3\u1d62\u00b2" : "\u03b1\u1d62/(2\u03c3\u1d62\u00b2)") + " = " +
        L.fmt(ratio, 2) + " times the way to the nearest clean image at this level, and overshoots " +
        "above 1. Lower \u03b5 and press Reset.\n" : far ? "the pixels spread far beyond this level's noise: the chains " +
        "have not settled yet and still hold the noise of an earlier, larger \u03c3 (the step is not too large: " + dn +
        "/\u03c3\u1d62\u00b2 = " + L.fmt(ratio, 2) + " < 1). Too few steps follow the noise down; more levels L or " +
        "steps T let the chains settle.\n" : "");
      outOfRange = overshoots; unsettled = far && !overshoots;
      if (inpaint) {
        var hidden = 0;
        for (j = 0; j < D; j++) if (!mask[j]) hidden += 1;
        var g = knownCheck();
        if (hidden === 0) body += "nothing to fill in: paint over the digit to hide pixels\n";
        else if (hidden === D) body += "every pixel hidden: Algorithm 2 is then Algorithm 1 (nothing known)\n";
        else {
          body += hidden + " of 784 pixels to fill in; the other " + (D - hidden) + " are known" + (g === null ? "\n" :
            ", held at y = x + \u03c3\u1d62z (largest gap " + g.toExponential(1) + ")\n");
        }
        if (readings) {
          var list = readings.list.map(function (r) { return r.digit + " (" + r.confidence.toFixed(2) + ")"; }).join(", ");
          body += final ? "the classifier reads the finished completions: " + list + "\n" :
            "the classifier's reading at \u03c3 = " + readings.sigma.toPrecision(3) + " (the end of a level; not shown " +
            "under the images): " + list + ". The images still hold noise of size \u03c3 there; the classifier knows " +
            "clean digits only, so a reading at large \u03c3 means nothing, however confident\n";
        }
      }
      var todo = run.total - run.t + (denoising() && !run.denoised ? 1 : 0);
      var left = cn.evals ? todo * cn.ms / cn.evals / 1000 : NaN;
      var finished = !loading && (bad > 0 || todo === 0);
      var modelName = switching && env.manifest.models.filter(function (e) { return e.file === switching; })[0];
      if (switching) head = "Loading the model " + (modelName ? modelName.name : switching) + " \u2026 (the chains " +
        "below wait for it)\n" + head;
      stats.textContent = head + body + speedText(cn) + (cn.evals && todo > 0 && !bad ? (left < 1 ? "; under a second left" :
        "; about " + L.fmt(left, 0) + " s left") : "") + (run.t === 0 ? "\nPress Run." : "") +
        (finished ? "\n" + (pressedDone ? "Run has nothing left to do: " : "") + (bad ? "the chain diverged" :
          "the chain is finished") + ". Press Reset (or change a setting) to run it again." : "");
      retitle();
    }
    defaults();
    restart();
    return {
      state: function () {
        var st = {kind: inpaint ? "mnist_inpaint" : "mnist_generate", model: modelCtl.get(), n: n, t: run.t, total: run.total,
          level: run.level(), sigmas: run.sigmas, network_levels: sch.levels, eps: run.eps, n_steps_each: run.nStepsEach,
          convention: run.convention, seed: Math.round(seedCtl.get()), diverged: bad, out_of_range: outOfRange, unsettled: unsettled,
          running: loop.running(),
          busy: loop.busy() || !!loading || !!switching, evals: chainNet().calls, rate_evals: chainNet().evals,
          rate_images: chainNet().images, eval_ms: chainNet().evals ? chainNet().ms / chainNet().evals : null,
          finished: run.t >= run.total && (!denoising() || !!run.denoised), levels_label: lLabel.textContent,
          title: env.title ? env.title.textContent : null};
        if (modeCtl) st.mode = modeCtl.get();
        if (denoiseCtl) { st.final_denoise = denoising(); st.denoised = !!run.denoised; }
        if (inpaint) {
          st.index = Math.round(digitCtl.get()); st.hidden = D - mask.reduce(function (a, b) { return a + b; }, 0);
          st.known_gap = knownCheck(); st.readings = readings ? readings.list : null;
          st.reading_final = readings ? readings.final : null; st.reading_sigma = readings ? readings.sigma : null;
        }
        return st;
      },
      /** The chain's numbers now (for the tests): x, the last step's noise z (and y, z' of the level for Algorithm 2). */
      arrays: function () {
        var a = {x: Array.from(run.x), z: Array.from(run.z), start: Array.from(starts), mask: Array.from(mask)};
        if (run.known) { a.y = Array.from(run.y); a.zy = Array.from(run.zy); a.known = Array.from(run.known); }
        return a;
      },
      /** Run k more steps now (a promise), whether or not the loop runs. */
      advance: function (k) {
        loop.stop();
        var left = k;
        function more() { if (left-- <= 0) return Promise.resolve(run.t); return stepOnce().then(function (m) { return m ? more() : run.t; }); }
        return (loading || Promise.resolve()).then(more);  // a step waits for the baseline's session
      },
      loop: loop
    };
  }
  L.figures.mnist_generate = function (ui, cfg, env) { return sampler(ui, cfg, env, false); };
  L.figures.mnist_inpaint = function (ui, cfg, env) { return sampler(ui, cfg, env, true); };

  /* ---------- mounting: the static picture stays until the network has loaded ---------- */

  /** Build the figure in element `rootId` once onnxruntime, the manifest and the model are loaded;
   * on file:// or a failed load, keep the static picture and say how to get the figure live. */
  L.onnx.mount = function (rootId) {
    var d = global.document, root = d.getElementById(rootId);
    if (!root || root.getAttribute("data-mounted")) return;
    root.setAttribute("data-mounted", "1");
    L.addStyle();
    var cfg = JSON.parse(root.querySelector("script.ncsn-live-config").textContent);
    var ui = root.querySelector(".ncsn-live-ui"), fallback = root.querySelector(".ncsn-live-fallback");
    var note = root.querySelector(".ncsn-live-note"), status = {kind: cfg.kind, live: false, status: "loading"};
    var title = root.querySelector(".ncsn-live-title");
    root.state = function () { return JSON.stringify(root.figure ? root.figure.state() : status); };
    function fail(err) {
      status.status = "failed"; status.error = String(err && err.message || err);
      if (!root.figure) {
        ui.style.display = "none";
        if (fallback) fallback.style.display = "";
      }
      note.style.display = "";
      note.textContent = "The live figure could not start here (" + status.error + "). " + cfg.serve_hint;
      if (global.console) global.console.warn("ncsn live figure " + rootId + ": " + status.error);
    }
    if (global.location.protocol === "file:") { status.status = "static: page opened from file://"; return; }
    note.textContent = "Loading the score network (onnxruntime-web) \u2026";
    var base = L.onnx.staticBase(cfg.static_base), env = {fail: fail, classifier: null, title: title,
      titleText: title ? title.textContent : ""};
    var nets = {};
    env.switchModel = function (file) {
      if (!nets[file]) {
        var entry = env.manifest.models.filter(function (m) { return m.file === file; })[0];
        if (!entry) return Promise.reject(new Error("no model " + file + " in models.json"));
        nets[file] = Promise.all([L.onnx.runtime(base), L.onnx.session(base, file)]).then(function (a) {
          return new ScoreNet(a[0], a[1], entry);
        });
      }
      return nets[file].then(function (net) { env.net = net; return net; }, function (e) { fail(e); throw e; });
    };
    /** The appendix's baseline network (a promise), its session made on first use. */
    env.loadBaseline = function () {
      if (!env.baselinePromise) {
        env.baselinePromise = Promise.all([L.onnx.runtime(base), L.onnx.session(base, env.manifest.baseline.file)])
          .then(function (a) { env.baseline = new ScoreNet(a[0], a[1], env.manifest.baseline); return env.baseline; },
            function (e) { fail(e); throw e; });
      }
      return env.baselinePromise;
    };
    L.onnx.manifest(base).then(function (manifest) {
      env.manifest = manifest;
      var wantsClassifier = cfg.kind === "mnist_inpaint" && manifest.classifier;
      // the baseline's session is made only when the figure starts in its mode (else when it is chosen)
      var wantsBaseline = cfg.kind === "mnist_generate" && manifest.baseline && cfg.mode === "single";
      // a site built without the figure's model (say, before its checkpoint existed) starts at its first
      var has = manifest.models.some(function (m) { return m.file === cfg.model; });
      return Promise.all([env.switchModel(has ? cfg.model : manifest.models[0].file), wantsClassifier ? Promise.all([L.onnx.runtime(base),
        L.onnx.session(base, manifest.classifier.file)]) : null, wantsBaseline ? Promise.all([L.onnx.runtime(base),
        L.onnx.session(base, manifest.baseline.file)]) : null]);
    }).then(function (a) {
      if (a[1]) env.classifier = new Classifier(a[1][0], a[1][1]);
      if (a[2]) { env.baseline = new ScoreNet(a[2][0], a[2][1], env.manifest.baseline); env.baselinePromise = Promise.resolve(env.baseline); }
      var make = L.figures[cfg.kind];
      if (!make) throw new Error("unknown kind " + cfg.kind);
      ui.style.display = "";
      root.figure = make(ui, cfg, env);
      if (fallback) fallback.style.display = "none";
      note.style.display = "none";
    }).catch(fail);
  };
})(typeof window !== "undefined" ? window : this);
