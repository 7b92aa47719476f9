"""ncsn-edu: the library behind the book on Song & Ermon (2019), "Generative Modeling
by Estimating Gradients of the Data Distribution".

The top holds what a user runs, and what more than one folder shares; a folder holds what a
chapter imports, grouped by role:

* ``toy/``: the toy library of Parts I-III (mixtures with exact scores, losses, closed forms, toy networks).
* ``images/``: the image library of Part IV and the capstone (RefineNet, data, the trainer and its pieces).
* ``figures/``: plotting, picture sliders, and the live figures with their JavaScript in ``figures/live_js/``.
* ``experiments/``: the runs that make the book's committed results (``python -m ncsn_edu.experiments.<name>``).
* Commands: ``train_images``, ``train_cifar``, ``sample_images``, ``evaluate_images``, ``benchmark``.
* Shared: ``sampling`` (Langevin samplers), ``schedules`` (noise levels), ``score_sde`` (Part V),
  ``resources`` (committed results and data sets), ``progress`` (progress bars, static mode).
"""

__version__ = "0.1.0"

#: The book's repository. ``_config.yml``, ``pyproject.toml`` and every chapter's
#: set-up cell use this same address; ``tests/test_project.py`` keeps them equal.
REPOSITORY = "https://github.com/ncsn-edu/ncsn-edu"
