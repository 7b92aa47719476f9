"""The paper's CIFAR-10 experiment: ``python -m ncsn_edu.train_cifar``.

The same engine as :mod:`ncsn_edu.train_images` with ``--dataset cifar10`` as the
default, so every default is the paper's CIFAR-10 setting: CondRefineNetDilated at
ngf 128, ten noise levels from 1 to 0.01, annealed DSM with ``lambda = sigma^2``, Adam
1e-3, batch 128, 200,000 iterations, random horizontal flips, every batch dequantised
as the official code does (``--no-dequantize`` turns it off), a checkpoint every 5,000:
the preset :data:`ncsn_edu.images.presets.PAPER_CIFAR10`. The data are read through
:func:`ncsn_edu.images.data.image_dataset` (the original CIFAR-10 files or the offline JPEG
copy); the run prints which and records it in its checkpoints.

    python -m ncsn_edu.train_cifar --out runs/cifar10          # resumes when rerun
    torchrun --nproc_per_node=4 -m ncsn_edu.train_cifar --out runs/cifar10
    python -m ncsn_edu.train_cifar --help

``--preset ncsnv2`` gives NCSNv2's CIFAR-10 settings instead (Song & Ermon 2020:
sigma_1 = 50, L = 232, an unconditional network divided by sigma, an EMA of the weights
at 0.999, Adam 1e-4 for 300,000 iterations, no dequantisation; sampling with T = 5, step
6.2e-6 and a final denoising step): :data:`ncsn_edu.images.presets.NCSNV2_CIFAR10`.
``--original-cifar10`` reads torchvision's original files even where the JPEG copy is
present.
"""

from __future__ import annotations

import sys

from ncsn_edu.train_images import main as _main


def main(argv=None, model_factory=None) -> int:
    """The command line. Introduced in chapter 12 (the capstone)."""
    return _main(argv, dataset_default="cifar10", prog="python -m ncsn_edu.train_cifar", model_factory=model_factory)


if __name__ == "__main__":
    sys.exit(main())
