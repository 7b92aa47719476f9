"""Quality numbers for image samples that can be computed on a CPU.

* :func:`class_histogram` and :func:`mean_confidence`: what a classifier thinks of the
  samples (every class should appear, about equally often for MNIST, and be recognised
  with confidence);
* :func:`frechet_distance`: the distance between Gaussians fitted to two sets of
  features (the recipe of FID, here in a small classifier's feature space);
* :func:`nearest_neighbours`: the closest training images in pixel space, with their
  distances (Figure 9 of the paper: are samples copies of training data?);
* :func:`classifier_report`: all of the classifier numbers at once;
* :func:`inception_score`: ``exp(E_x KL(p(y|x) || p(y)))``, the Inception score's formula,
  here with any classifier's probabilities (the MNIST classifier in chapter 11);
* :func:`has_closed_loop`: whether a digit's strokes enclose background (0, 6, 8, 9 do;
  an open "C" does not);
* :func:`feature_nearest_neighbours`: the closest training images in a classifier's
  feature space (a stand-in for the paper's Figure 10, which uses Inception features).
"""

from __future__ import annotations

import numpy as np
import torch


def _as_2d(features) -> torch.Tensor:
    f = torch.as_tensor(features.detach().cpu() if isinstance(features, torch.Tensor) else np.asarray(features),
                        dtype=torch.float64)
    if f.dim() != 2 or len(f) < 2:
        raise ValueError(f"features must be an (N, D) array with N >= 2, got shape {tuple(f.shape)}")
    return f


# The linear algebra runs in torch (float64), so it follows torch.set_num_threads: numpy's
# multithreaded BLAS slows these small matrices down many times on a busy machine.
def _sqrtm_psd(a: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh((a + a.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet_distance_from_moments(mu1, cov1, mu2, cov2) -> float:
    """``||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1^{1/2} C2 C1^{1/2})^{1/2})``, the squared
    2-Wasserstein distance between ``N(mu1, C1)`` and ``N(mu2, C2)``.
    Belongs to chapter 11 (MNIST inpainting and sample quality)."""
    mu1, mu2, cov1, cov2 = (torch.as_tensor(np.asarray(t), dtype=torch.float64) for t in (mu1, mu2, cov1, cov2))
    s1 = _sqrtm_psd(cov1)
    cross = _sqrtm_psd(s1 @ cov2 @ s1)
    return float(((mu1 - mu2) ** 2).sum() + cov1.trace() + cov2.trace() - 2 * cross.trace())


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted (mean, unbiased covariance) to two
    feature sets of shapes ``(N_a, D)`` and ``(N_b, D)``. Like FID it is biased upwards
    for small N; compare only numbers computed with the same N.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    a, b = _as_2d(features_a), _as_2d(features_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} and {b.shape[1]}")
    return frechet_distance_from_moments(a.mean(0), torch.cov(a.T), b.mean(0), torch.cov(b.T))


def class_histogram(predictions, num_classes: int = 10) -> np.ndarray:
    """Fraction of ``predictions`` (class indices, or ``(N, K)`` probabilities/logits
    whose argmax is taken) falling in each class.
    Belongs to chapter 11 (MNIST inpainting and sample quality)."""
    p = torch.as_tensor(predictions)
    if p.dim() == 2:
        p = p.argmax(1)
    if p.dim() != 1 or len(p) == 0:
        raise ValueError("predictions must be a non-empty vector of classes or an (N, K) array")
    return np.bincount(p.cpu().numpy().astype(np.int64), minlength=num_classes)[:num_classes] / len(p)


def mean_confidence(probs) -> float:
    """Mean over samples of the largest class probability.
    Belongs to chapter 11 (MNIST inpainting and sample quality)."""
    p = torch.as_tensor(probs)
    if p.dim() != 2:
        raise ValueError("probs must be (N, K)")
    return p.max(1).values.mean().item()


@torch.no_grad()
def classifier_outputs(classifier, images: torch.Tensor, batch_size: int = 500):
    """``(probabilities, features)`` of ``classifier`` (with ``features(x)`` and a
    ``head``-style forward) on ``images``.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    classifier.eval()
    probs, feats = [], []
    for i in range(0, len(images), batch_size):
        x = images[i : i + batch_size].float()
        f = classifier.features(x)
        feats.append(f)
        probs.append(torch.softmax(classifier.head(f), dim=1))
    return torch.cat(probs), torch.cat(feats)


def classifier_report(classifier, images: torch.Tensor, reference_features=None) -> dict:
    """Class histogram, mean confidence and (with ``reference_features``) the Frechet
    distance of ``images`` to the reference, in one dict.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    probs, feats = classifier_outputs(classifier, images)
    hist = class_histogram(probs)
    out = {"histogram": hist, "confidence": mean_confidence(probs), "classes_present": int((hist > 0).sum()),
           "max_class_deviation": float(np.abs(hist - 1 / len(hist)).max()), "features": feats}
    if reference_features is not None:
        out["frechet"] = frechet_distance(feats, reference_features)
    return out


@torch.no_grad()
def nearest_neighbours(queries: torch.Tensor, reference: torch.Tensor, k: int = 1, chunk: int = 4096):
    """The ``k`` nearest ``reference`` images of each query in pixel space (Euclidean).

    Returns ``(distances, indices)``, both ``(N_queries, k)``, nearest first.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    if queries.shape[1:] != reference.shape[1:]:
        raise ValueError(f"queries {tuple(queries.shape[1:])} and reference {tuple(reference.shape[1:])} differ")
    if not 1 <= k <= len(reference):
        raise ValueError("k must be between 1 and the number of reference images")
    q = queries.flatten(1).double()
    q2 = (q**2).sum(1, keepdim=True)
    best_d = torch.full((len(q), k), float("inf"), dtype=torch.float64)
    best_i = torch.zeros((len(q), k), dtype=torch.long)
    for start in range(0, len(reference), chunk):
        r = reference[start : start + chunk].flatten(1).double()
        d2 = (q2 + (r**2).sum(1)[None, :] - 2 * q @ r.T).clamp_min(0)
        d = torch.cat([best_d, d2.sqrt()], dim=1)
        i = torch.cat([best_i, torch.arange(start, start + len(r)).expand(len(q), -1)], dim=1)
        best_d, pos = d.topk(k, dim=1, largest=False)
        best_i = i.gather(1, pos)
    return best_d, best_i


def shuffle_pixels(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each image with its pixels randomly permuted (same pixel values, no structure):
    the control that a quality number must tell apart from real images.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    flat = images.flatten(1)
    idx = torch.argsort(torch.rand(flat.shape, generator=generator), dim=1)
    return flat.gather(1, idx).view_as(images)


def frechet_between_disjoint_subsets(features, n: int, repeats: int = 1, generator: torch.Generator | None = None):
    """Frechet distances between two *disjoint* random subsets of ``n`` rows of the same
    feature set, ``repeats`` times (a new random split each time).

    Both subsets come from one distribution, so the true distance is 0: what this returns
    is the small-sample bias of the Frechet distance at size ``n`` (for ``N(0, I_d)``
    features the mean term alone contributes ``2 d / n``). Compare a generator's Frechet
    distance at size ``n`` with these numbers, not with 0.
    Introduced in chapter 11 (MNIST inpainting and sample quality).
    """
    f = _as_2d(features)
    if not 2 <= n <= len(f) // 2:
        raise ValueError(f"need 2 <= n <= {len(f) // 2} (two disjoint subsets of {len(f)} rows)")
    out = []
    for _ in range(repeats):
        perm = torch.randperm(len(f), generator=generator)
        out.append(frechet_distance(f[perm[:n]], f[perm[n:2 * n]]))
    return np.array(out)


def inception_score(probs) -> float:
    """``exp(E_x KL(p(y|x) || p(y)))`` for class probabilities ``probs`` of shape ``(N, K)``
    (one row ``p(y|x)`` per image), with ``p(y)`` the mean of the rows: the formula of the
    Inception score, whatever classifier gave the probabilities.

    It equals ``exp(H(p(y)) - E_x H(p(y|x)))``: large when each image is classified with
    confidence (low entropy per row) and the classes are used evenly (high entropy of the
    mean). It lies between 1 (every row the same) and ``K`` (confident rows, classes
    exactly balanced). ``p(y)`` is estimated from the same ``N`` rows, so compare only
    scores of equally many images.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    p = torch.as_tensor(probs, dtype=torch.float64)
    if p.dim() != 2 or len(p) == 0:
        raise ValueError(f"probs must be a non-empty (N, K) array, got shape {tuple(p.shape)}")
    if (p < 0).any() or not torch.allclose(p.sum(1), torch.ones(len(p), dtype=torch.float64), atol=1e-4):
        raise ValueError("each row of probs must be a probability vector (non-negative, summing to 1)")
    p_y = p.mean(0, keepdim=True)
    kl = (torch.xlogy(p, p) - torch.xlogy(p, p_y)).sum(1)  # 0 log 0 = 0; p_y > 0 wherever p > 0
    return kl.mean().exp().item()


@torch.no_grad()
def feature_nearest_neighbours(classifier, queries: torch.Tensor, reference_features: torch.Tensor, k: int = 1):
    """The ``k`` nearest reference images of each query image in ``classifier``'s feature
    space (Euclidean distance between the ``features`` of :func:`classifier_outputs`).

    ``reference_features`` are the features of the reference images, computed once with
    :func:`classifier_outputs`. Returns ``(distances, indices)``, both ``(N_queries, k)``,
    nearest first; the indices point into the reference set. The paper's Figure 10 does
    this with Inception-v3 features on CIFAR-10; chapter 11 uses the MNIST classifier.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    _, q = classifier_outputs(classifier, queries)
    return nearest_neighbours(q, torch.as_tensor(reference_features), k=k)


@torch.no_grad()
def has_closed_loop(images: torch.Tensor, threshold: float = 0.5, min_area: int = 3) -> torch.Tensor:
    """For each image ``(N, 1, H, W)`` in ``[0, 1]``: do its strokes (pixels above
    ``threshold``) enclose at least ``min_area`` background pixels that cannot be reached
    from the border through background? Background spreads to its 4 neighbours only, so
    a stroke that touches itself diagonally still closes a loop. Returns a bool tensor ``(N,)``.
    Introduced in chapter 11 (MNIST inpainting and sample quality)."""
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"expected images of shape (N, 1, H, W), got {tuple(images.shape)}")
    background = images[:, 0] <= threshold
    reached = torch.zeros_like(background)
    reached[:, 0, :], reached[:, -1, :], reached[:, :, 0], reached[:, :, -1] = (
        background[:, 0, :], background[:, -1, :], background[:, :, 0], background[:, :, -1])
    while True:
        grown = reached.clone()
        grown[:, 1:, :] |= reached[:, :-1, :]
        grown[:, :-1, :] |= reached[:, 1:, :]
        grown[:, :, 1:] |= reached[:, :, :-1]
        grown[:, :, :-1] |= reached[:, :, 1:]
        grown &= background
        if torch.equal(grown, reached):
            break
        reached = grown
    enclosed = background & ~reached
    return enclosed.flatten(1).sum(1) >= min_area
