import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

# Two cores on CI: keep each test process from oversubscribing them.
torch.set_num_threads(min(2, os.cpu_count() or 1))
