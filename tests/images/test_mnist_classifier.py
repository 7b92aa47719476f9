"""ncsn_edu.images.mnist_classifier: the accuracy it reports is the fraction classified right, and the
committed classifier (data/mnist_classifier.pt) reaches the test accuracy recorded in its file on the
10,000 real MNIST test digits. (Its features and the quality numbers built on them:
tests/images/test_metrics.py.)"""

import torch
from missing_data import skip_missing

from ncsn_edu.images.mnist_classifier import FEATURES, MnistClassifier, accuracy, load_classifier


class FixedAnswer(torch.nn.Module):
    """Answers class ``image.sum() mod 10`` for each image: a classifier whose right answers are known."""

    def forward(self, x):
        return torch.nn.functional.one_hot(x.flatten(1).sum(1).long() % 10, 10).float()


def test_accuracy_is_the_fraction_of_right_answers_over_every_batch():
    x = torch.arange(25.0).reshape(25, 1, 1, 1)
    labels = torch.arange(25) % 10
    labels[[3, 11, 17]] = (labels[[3, 11, 17]] + 1) % 10  # three wrong answers, the last image right
    assert accuracy(FixedAnswer(), x, labels, batch_size=4) == 22 / 25  # a last batch of one


def test_the_committed_classifier_reaches_its_recorded_test_accuracy():
    from ncsn_edu.images.data import image_dataset

    try:
        test = image_dataset("mnist", train=False)
    except FileNotFoundError as err:  # offline without a copy of MNIST
        skip_missing("mnist", err)
    model, summary = load_classifier()
    assert isinstance(model, MnistClassifier) and not model.training
    assert model.features(torch.zeros(2, 1, 28, 28)).shape == (2, FEATURES)
    measured = accuracy(model, test.data.unsqueeze(1).float() / 255, test.targets)
    assert abs(measured - summary["test_accuracy"]) <= 1e-4  # one digit in 10,000
    assert measured > 0.97
