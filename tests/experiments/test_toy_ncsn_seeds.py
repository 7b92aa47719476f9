"""Chapter 9's seed table: the committed rows (the chapter checks network 0 against its own run)."""

import json

from ncsn_edu.experiments.toy_ncsn_seeds import sampling_seed
from ncsn_edu.resources import resource_path


def test_the_committed_rows():
    """Three networks (training seeds 0, 1, 2) with their sampling seeds; each recovers the 1:4 weights
    within 0.05 (the package's test_training asserts the same for freshly trained networks) and lands
    near the mean log-density of q_1 at step 0.1 (-4.36, chapter 9's closed form) within 0.3."""
    data = json.loads(resource_path("toy_ncsn_seeds.json").read_text())
    assert "toy_ncsn_seeds" in data["command"]
    assert [r["train_seed"] for r in data["rows"]] == [0, 1, 2]
    for r in data["rows"]:
        assert r["sampling_seed"] == sampling_seed(r["train_seed"])
        assert abs(r["fraction"] - 0.8) < 0.05 and abs(r["mean_log_p"] + 4.36) < 0.3
