"""ncsn-edu: the library behind the book on Song & Ermon (2019), "Generative Modeling
by Estimating Gradients of the Data Distribution".

Modules are named for what they hold, grouped by role:

* Toy library (Parts I-III): ``distributions`` (mixtures with exact scores), ``losses``
  (score matching objectives), ``gaussian_models``, ``closed_forms`` and
  ``annealing_theory`` (closed-form answers the chapters measure against), ``noise_scales``
  (noise in D dimensions), ``schedules`` (noise levels), ``sampling`` (Langevin samplers),
  ``toy_nets``, ``training`` (toy training loops), ``toy_metrics``, ``gradient_noise`` (the
  variance of a random loss's gradient with respect to the parameters).
* Image library (Part IV, capstone): ``refinenet`` (the paper's network), ``resnet_score``
  (Figure 1's ResScore), ``inpainting`` (Algorithm 2), ``data`` (MNIST, CIFAR-10, any image
  folder), ``presets`` (settings and named presets), ``seeding``, ``devices``,
  ``image_batches``, ``train_step``, ``checkpoints``, ``precision`` (bf16, fp16 or fp32 per
  device, and the per-level agreement check), ``official`` (the authors' checkpoints),
  ``metrics`` and ``mnist_classifier`` (sample quality on a CPU).
* Beyond the paper (Part V): ``score_sde`` (NCSN as a VE SDE: predictor-corrector sampling,
  the probability-flow ODE and its exact likelihoods, Hutchinson's divergence estimator).
* Experiments that make the book's committed results: ``low_density_experiment``
  (Figure 2), ``manifold_experiment`` (Figure 1), ``score_sde_experiment`` (chapter 13's MNIST
  samples), ``timing``.
* Commands: ``train_images`` and ``train_cifar`` (training), ``sample_images`` (samples,
  inpainting), ``evaluate_images`` (IS/FID, checkpoint selection), ``benchmark`` (speed),
  ``live_benchmark`` (the live figures' speed in a browser).
* Book plumbing: ``plotting``, ``sliders`` (picture sliders), ``live`` (live figures: the
  JavaScript in ``live_js/`` that runs the toy mathematics in the reader's browser),
  ``progress``, ``resources`` (where committed results and data sets live).
"""

__version__ = "0.1.0"

#: The book's repository. ``_config.yml``, ``pyproject.toml`` and every chapter's
#: set-up cell use this same address; ``tests/test_project.py`` keeps them equal.
REPOSITORY = "https://github.com/ncsn-edu/ncsn-edu"
