"""The runs that make the book's committed results: the paper's Figure 1 (manifold) and Figure 2
(low density), the paper's MNIST chains, chapter 13's score-SDE samples, cost curves, and the live
figures' speed. Each runs as ``python -m ncsn_edu.experiments.<name>``; ``data/README.md`` gives
the exact command of each committed file."""
