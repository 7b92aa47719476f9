"""ncsn-edu: the library behind the book on Song & Ermon (2019), "Generative Modeling
by Estimating Gradients of the Data Distribution".

Modules are named for what they hold: ``distributions`` (mixtures with exact scores),
``losses`` (score matching objectives), ``schedules`` (noise levels), ``sampling``
(Langevin samplers), ``training`` (toy training loops), ``sliders`` (figures driven by
a slider), ``plotting``, ``data`` and ``resources`` (files shipped under ``data/``).
"""

__version__ = "0.1.0"

#: The book's repository. ``_config.yml``, ``pyproject.toml`` and every chapter's
#: set-up cell use this same address; ``tests/test_project.py`` keeps them equal.
REPOSITORY = "https://github.com/ncsn-edu/ncsn-edu"
