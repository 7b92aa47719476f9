"""The result file of the score-SDE run on MNIST (ncsn_edu.experiments.sde_mnist)."""

import torch


def test_mnist_result_file_round_trip(tmp_path):
    from ncsn_edu.experiments.sde_mnist import SAMPLERS, load, save

    images = {k: torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8).numpy() for k in SAMPLERS}
    result = {k: {"images": images[k], "evaluations": 7 + i, "seconds": 1.5} for i, k in enumerate(SAMPLERS)}
    save(result, tmp_path / "r.npz", {"command": "test"})
    back = load(tmp_path / "r.npz")
    assert back["meta"]["command"] == "test" and back["meta"]["evaluations"] == [7 + i for i in range(len(SAMPLERS))]
    for k in SAMPLERS:
        assert torch.equal((back["samples"][k] * 255).round().to(torch.uint8), torch.from_numpy(images[k]))
