"""The authors' checkpoints: read them into our :class:`~ncsn_edu.images.refinenet.CondRefineNetDilated`.

The official repository (ermongroup/ncsn) saves a trained network as a list
``[model state_dict, optimizer state_dict]`` written with ``torch.save`` from a model
wrapped in ``torch.nn.DataParallel``, so every key of the model's state starts with
``module.``. Its network is the one of :mod:`ncsn_edu.images.refinenet` (the same function;
``tests/images/test_official.py`` checks it against a fixture computed by the official code),
with other module names. This module holds the name mapping and a loader:

    model, sigmas, cfg = load_official_checkpoint("run/logs/cifar10/checkpoint.pth", "cifar10")

The optimizer state (second item of the list) is ignored. The sigmas are the paper's
(geometric from 1 to 0.01, one per noise level of the network), as in the official
``configs/anneal.yml``.

The mapping, ours <-> official (``{i}``, ``{j}``, ``{k}`` count from 0 and
``{i+1}`` means the same index counted from 1, as the official names do):

=========================================  ==================================================
ours                                       official (after the ``module.`` prefix)
=========================================  ==================================================
``begin_conv.*``                           ``begin_conv.*``
``stage{s}.{b}.norm1.*``                   ``res{s}.{b}.normalize1.*``
``stage{s}.{b}.norm2.*``                   ``res{s}.{b}.normalize2.*``
``stage{s}.{b}.conv1.*``                   ``res{s}.{b}.conv1.*``
``stage{s}.{b}.conv2.*``                   ``res{s}.{b}.conv2.*`` (``conv2.conv.*`` when it pools)
``stage{s}.{b}.shortcut.*``                ``res{s}.{b}.shortcut.*`` (``shortcut.conv.*`` when it pools)
``refine{r}.adapt.{k}.norms.{i}.{j}.*``    ``refine{r}.adapt_convs.{k}.{i+1}_{j+1}_norm.*``
``refine{r}.adapt.{k}.convs.{i}.{j}.*``    ``refine{r}.adapt_convs.{k}.{i+1}_{j+1}_conv.*``
``refine{r}.fuse.norms.{k}.*``             ``refine{r}.msf.norms.{k}.*``
``refine{r}.fuse.convs.{k}.*``             ``refine{r}.msf.convs.{k}.*``
``refine{r}.pool.norms.{k}.*``             ``refine{r}.crp.norms.{k}.*``
``refine{r}.pool.convs.{k}.*``             ``refine{r}.crp.convs.{k}.*``
``refine{r}.out.norms.{i}.{j}.*``          ``refine{r}.output_convs.{i+1}_{j+1}_norm.*``
``refine{r}.out.convs.{i}.{j}.*``          ``refine{r}.output_convs.{i+1}_{j+1}_conv.*``
``end_norm.*``                             ``normalizer.*``
``end_conv.*``                             ``end_conv.*``
=========================================  ==================================================

Every normalisation layer holds one tensor, ``embed.weight`` of shape
``(num_classes, 3 * channels)``, with ``gamma | alpha | beta`` in that order in both
codes. Neither code has buffers (instance normalisation keeps no running statistics).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ncsn_edu.images.refinenet import CondRefineNetDilated
from ncsn_edu.schedules import geometric_sigmas

# The settings of the official configs/anneal.yml per data set (the checkpoints' networks).
OFFICIAL_SETTINGS = {
    "mnist": dict(channels=1, image_size=28, ngf=64),
    "cifar10": dict(channels=3, image_size=32, ngf=128),
    "celeba": dict(channels=3, image_size=32, ngf=128),
}
SIGMA_BEGIN, SIGMA_END = 1.0, 0.01  # configs/anneal.yml: sigma_begin, sigma_end
PREFIX = "module."  # what torch.nn.DataParallel puts before every key

# (pattern on our name, replacement giving the official name), tried in order; the
# first that matches is used. The patterns cover the whole name up to the tensor's own
# name ("weight", "bias"), which follows unchanged.
_OURS_TO_OFFICIAL = [
    (r"^begin_conv\.", r"begin_conv."),
    (r"^end_conv\.", r"end_conv."),
    (r"^end_norm\.", r"normalizer."),
    (r"^stage([1-4])\.(\d+)\.norm([12])\.", r"res\1.\2.normalize\3."),
    (r"^stage([1-4])\.(\d+)\.(conv1|conv2|shortcut)\.", r"res\1.\2.\3."),
    (r"^refine([1-4])\.adapt\.(\d+)\.(norm|conv)s\.(\d+)\.(\d+)\.", None),  # indices shift: see _rcu
    (r"^refine([1-4])\.out\.(norm|conv)s\.(\d+)\.(\d+)\.", None),
    (r"^refine([1-4])\.fuse\.(norms|convs)\.(\d+)\.", r"refine\1.msf.\2.\3."),
    (r"^refine([1-4])\.pool\.(norms|convs)\.(\d+)\.", r"refine\1.crp.\2.\3."),
]
_OFFICIAL_TO_OURS = [
    (r"^begin_conv\.", r"begin_conv."),
    (r"^end_conv\.", r"end_conv."),
    (r"^normalizer\.", r"end_norm."),
    (r"^res([1-4])\.(\d+)\.normalize([12])\.", r"stage\1.\2.norm\3."),
    (r"^res([1-4])\.(\d+)\.(conv1|conv2|shortcut)\.", r"stage\1.\2.\3."),
    (r"^refine([1-4])\.adapt_convs\.(\d+)\.(\d+)_(\d+)_(norm|conv)\.", None),
    (r"^refine([1-4])\.output_convs\.(\d+)_(\d+)_(norm|conv)\.", None),
    (r"^refine([1-4])\.msf\.(norms|convs)\.(\d+)\.", r"refine\1.fuse.\2.\3."),
    (r"^refine([1-4])\.crp\.(norms|convs)\.(\d+)\.", r"refine\1.pool.\2.\3."),
]


def _rcu_to_official(m: re.Match) -> str:
    g = m.groups()
    if len(g) == 5:  # adapt: refine, input k, kind, block i, stage j
        r, k, kind, i, j = g
        return f"refine{r}.adapt_convs.{k}.{int(i) + 1}_{int(j) + 1}_{kind}."
    r, kind, i, j = g  # out
    return f"refine{r}.output_convs.{int(i) + 1}_{int(j) + 1}_{kind}."


def _rcu_to_ours(m: re.Match) -> str:
    g = m.groups()
    if len(g) == 5:
        r, k, i, j, kind = g
        return f"refine{r}.adapt.{k}.{kind}s.{int(i) - 1}.{int(j) - 1}."
    r, i, j, kind = g
    return f"refine{r}.out.{kind}s.{int(i) - 1}.{int(j) - 1}."


def _rename(name: str, rules, rcu) -> str:
    for pattern, repl in rules:
        m = re.match(pattern, name)
        if m:
            head = rcu(m) if repl is None else m.expand(repl)
            return head + name[m.end():]
    raise KeyError(name)


def official_name(ours: str) -> str:
    """The official name (without ``module.``) of our state-dict key ``ours``.
    Used by the capstone commands (chapter 12)."""
    try:
        return _rename(ours, _OURS_TO_OFFICIAL, _rcu_to_official)
    except KeyError:
        raise KeyError(f"{ours!r} is not a key of ncsn_edu's CondRefineNetDilated") from None


def our_name(official: str) -> str:
    """Our state-dict key for the official key ``official`` (with or without ``module.``).
    Used by the capstone commands (chapter 12)."""
    key = official[len(PREFIX):] if official.startswith(PREFIX) else official
    try:
        return _rename(key, _OFFICIAL_TO_OURS, _rcu_to_ours)
    except KeyError:
        raise KeyError(f"{official!r} is not a key of the official CondRefineNetDilated") from None


def to_official_state_dict(state: dict, prefix: str = PREFIX) -> dict:
    """Our state dict renamed to the official names (with the DataParallel ``prefix``).
    Used by the capstone commands (chapter 12)."""
    return {prefix + official_name(k): v for k, v in state.items()}


def from_official_state_dict(state: dict) -> dict:
    """An official state dict (with or without ``module.``) renamed to our names.
    Used by the capstone commands (chapter 12)."""
    return {our_name(k): v for k, v in state.items()}


def official_checkpoint(model: CondRefineNetDilated, optimizer_state: dict | None = None) -> list:
    """``model`` in the official checkpoint layout ``[state_dict, optimizer state_dict]``
    (the layout :func:`load_official_checkpoint` reads; used by the tests).
    Used by the capstone commands (chapter 12)."""
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return [to_official_state_dict(state), {} if optimizer_state is None else optimizer_state]


# ----------------------------------------------------------------------------- reading

def is_official_layout(obj) -> bool:
    """Whether ``obj`` (what ``torch.load`` returned) looks like an official checkpoint:
    a list whose first item is a state dict with the official network's first conv.
    Used by the capstone commands (chapter 12)."""
    return (isinstance(obj, (list, tuple)) and len(obj) >= 1 and isinstance(obj[0], dict)
            and any(k in obj[0] for k in (PREFIX + "begin_conv.weight", "begin_conv.weight"))
            and any(k in obj[0] for k in (PREFIX + "normalizer.embed.weight", "normalizer.embed.weight")))


def read_official_state(path) -> dict:
    """The model state (official names, ``module.`` removed) of the official checkpoint
    at ``path``; the optimizer state is dropped. Clear errors for anything else.
    Used by the capstone commands (chapter 12)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise RuntimeError(f"cannot read {path}: {type(err).__name__}: {err}") from err
    if not is_official_layout(obj):
        found = (f"a dict with keys {sorted(obj)[:6]}" if isinstance(obj, dict)
                 else f"a {type(obj).__name__}")
        ours = isinstance(obj, dict) and "model" in obj and "config" in obj
        raise RuntimeError(
            f"{path} is not an official NCSN checkpoint (a list [model state_dict, optimizer "
            f"state_dict] with keys such as 'module.begin_conv.weight'); it holds {found}"
            + ("; it looks like a checkpoint of ncsn_edu.train_images: drop --official" if ours else "")
        )
    state = obj[0]
    return {(k[len(PREFIX):] if k.startswith(PREFIX) else k): v for k, v in state.items()}


def official_hint(path) -> str | None:
    """For a file in the official layout, a message saying so and how to read it (what
    the sampler says when such a file is given as one of our checkpoints); else None.
    Used by the capstone commands (chapter 12)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    if not is_official_layout(obj):
        return None
    state = {(k[len(PREFIX):] if k.startswith(PREFIX) else k): v for k, v in obj[0].items()}
    found = network_shape(state)
    return (f"{path} is an official NCSN checkpoint (a list [model, optimizer] from ermongroup/ncsn) "
            f"holding a network of width ngf={found['ngf']} for {found['channels']}-channel images; "
            f"read it with --official mnist, --official cifar10 or --official celeba")


def network_shape(state: dict) -> dict:
    """``channels``, ``ngf`` and ``num_classes`` of the network whose official state
    (names without ``module.``) is ``state``, read from the first conv and the last norm.
    Used by the capstone commands (chapter 12)."""
    w = state["begin_conv.weight"]  # (ngf, channels, 3, 3)
    e = state["normalizer.embed.weight"]  # (num_classes, 3 * ngf)
    return dict(channels=int(w.shape[1]), ngf=int(w.shape[0]), num_classes=int(e.shape[0]))


def _advice(found: dict, want: dict, dataset: str) -> str:
    if found["channels"] != want["channels"]:
        fits = [d for d, v in OFFICIAL_SETTINGS.items() if v["channels"] == found["channels"]]
        return (f"; a {found['channels']}-channel network is not a {dataset} one"
                + (f" (try --official {' or --official '.join(fits)})" if fits else ""))
    return f"; if it is a {dataset} network of another width, pass --official-ngf {found['ngf']}"


def load_official_checkpoint(path, dataset: str, ngf: int | None = None, device="cpu",
                             sigma_begin: float = SIGMA_BEGIN, sigma_end: float = SIGMA_END):
    """Load the official checkpoint at ``path``, trained on ``dataset`` (``mnist``,
    ``cifar10`` or ``celeba``), into our network: returns ``(model, sigmas, config)``
    like :func:`ncsn_edu.images.checkpoints.load_checkpoint`.

    ``ngf`` is the width the file must have (default: the official one for ``dataset``,
    64 for MNIST and 128 otherwise); a file of another width or channel count is refused
    with what it holds. ``sigmas`` fall geometrically from ``sigma_begin`` to
    ``sigma_end`` (default: the paper's 1 and 0.01), one per noise level of the network.
    Introduced in chapter 12 (the capstone).
    """
    if dataset not in OFFICIAL_SETTINGS:
        raise ValueError(f"unknown data set {dataset!r} for an official checkpoint; "
                         f"choose one of {', '.join(OFFICIAL_SETTINGS)}")
    want = dict(OFFICIAL_SETTINGS[dataset])
    if ngf is not None:
        want["ngf"] = ngf
    state = read_official_state(path)
    found = network_shape(state)
    if (found["channels"], found["ngf"]) != (want["channels"], want["ngf"]):
        raise ValueError(
            f"{path} holds a network of width ngf={found['ngf']} for {found['channels']}-channel images "
            f"(begin_conv.weight {tuple(state['begin_conv.weight'].shape)}), but the {dataset} network "
            f"has ngf={want['ngf']} and {want['channels']} channel(s)" + _advice(found, want, dataset)
        )
    model = CondRefineNetDilated(want["channels"], want["ngf"], found["num_classes"], want["image_size"])
    ours = model.state_dict()
    try:
        mapped = from_official_state_dict(state)
    except KeyError as err:
        raise ValueError(f"{path}: {err.args[0]}") from None
    missing = sorted(set(ours) - set(mapped))
    extra = sorted(set(mapped) - set(ours))
    if missing or extra:
        raise ValueError(f"{path} does not hold the official CondRefineNetDilated: "
                         f"missing {[official_name(k) for k in missing][:5]}, unexpected "
                         f"{[official_name(k) for k in extra][:5]}")
    for k, v in mapped.items():
        if v.shape != ours[k].shape:
            raise ValueError(f"{path}: {PREFIX}{official_name(k)} has shape {tuple(v.shape)}, "
                             f"expected {tuple(ours[k].shape)} for ngf={want['ngf']}, "
                             f"{want['channels']} channel(s)")
    model.load_state_dict(mapped)
    model.to(device).eval()
    sigmas = geometric_sigmas(sigma_begin, sigma_end, found["num_classes"]).to(device)
    cfg = dict(dataset=dataset, ngf=want["ngf"], n_sigmas=found["num_classes"], sigma_begin=sigma_begin,
               sigma_end=sigma_end, source="official", checkpoint=str(path))
    return model, sigmas, cfg
