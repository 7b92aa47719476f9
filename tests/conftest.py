import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

# The tests' networks are small: one thread is faster than two for them, and it stays
# fast when something else runs on a 2-core machine (two threads then slow down several
# times waiting for each other).
torch.set_num_threads(1)
