"""ncsn_edu.images.seeding: every random draw of the trainer is a pure function of (seed, stream, step)."""

import torch

from ncsn_edu.images import seeding


def test_mix_seeds_is_a_deterministic_63_bit_function_of_the_ordered_tuple():
    seeds = {seeding.mix_seeds(s, stream, k) for s in range(4) for stream in range(10) for k in range(250)}
    assert len(seeds) == 4 * 10 * 250  # distinct streams for distinct tuples
    assert all(0 <= s < 2**63 for s in seeds)
    assert seeding.mix_seeds(3, 1, 7) == seeding.mix_seeds(3, 1, 7)
    assert seeding.mix_seeds(1, 2) != seeding.mix_seeds(2, 1)  # the order matters
    assert seeding.mix_seeds(0) != seeding.mix_seeds(0, 0)  # so does the length


def test_the_streams_are_distinct():
    names = ("INIT", "ORDER", "BATCH", "NOISE", "TEST_IMAGES", "TEST_NOISE", "GRID", "SHARD", "INPAINT", "SYNTHETIC")
    assert len({getattr(seeding, n) for n in names}) == len(names)


def test_generators_repeat_their_draws():
    a = torch.rand(5, generator=seeding.generator(0, seeding.NOISE, 12))
    b = torch.rand(5, generator=seeding.generator(0, seeding.NOISE, 12))
    c = torch.rand(5, generator=seeding.generator(0, seeding.NOISE, 13))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_seeded_model_depends_on_the_seed_only_and_leaves_the_global_state_alone():
    state = torch.random.get_rng_state()
    a = seeding.seeded_model(torch.nn.Linear, 0, 4, 3)
    b = seeding.seeded_model(torch.nn.Linear, 0, 4, 3)
    c = seeding.seeded_model(torch.nn.Linear, 1, 4, 3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, c.weight)
