"""The shared plotting helpers draw what they are given."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from ncsn_edu.figures.plotting import (  # noqa: E402
    density_contourf,
    density_contours,
    image_grid,
    neighbour_figure,
    scatter_samples,
    show_grid,
    show_image,
)


def test_image_grid_places_each_image_in_its_cell():
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(5, 1, 28, 28, generator=gen)
    canvas = image_grid(images, nrow=2)  # 3 columns, the 6th cell left blank
    assert canvas.shape == (2 * 30, 3 * 30)
    for k in range(5):
        r, c = divmod(k, 3)
        np.testing.assert_array_equal(canvas[r * 30 + 1 : r * 30 + 29, c * 30 + 1 : c * 30 + 29], images[k, 0].numpy())
    assert (canvas[30:, 60:] == 1.0).all()  # the empty cell
    assert (canvas[:, 0] == 1.0).all() and (canvas[29:31, :] == 1.0).all()  # gaps


def test_show_grid_draws_the_mosaic():
    images = torch.rand(4, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 3 - 1  # clamped to [0, 1]
    fig, ax = plt.subplots()
    show_grid(ax, images, 2, "t")
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), image_grid(images, 2))
    assert ax.get_title() == "t"
    plt.close(fig)


def test_scatter_samples_draws_the_finite_points_on_density_contours():
    x = torch.tensor([[1.0, 2.0], [float("nan"), 0.0], [-3.0, 4.0]])
    fig, ax = plt.subplots()
    mean = torch.tensor([2.0, -1.0])
    scatter_samples(ax, x, "s", log_prob_fn=lambda p: -0.5 * ((p - mean) ** 2).sum(1), lim=5.0)
    np.testing.assert_array_equal(ax.collections[-1].get_offsets(), [[1.0, 2.0], [-3.0, 4.0]])
    assert ax.get_xlim() == (-5.0, 5.0) and ax.get_title() == "s"
    reference = fig.add_subplot(2, 1, 1)
    reference.set_title("r")  # without a title_fontsize the title keeps matplotlib's default size
    assert ax.title.get_fontsize() == reference.title.get_fontsize()
    plt.close(fig)


def test_density_contours_are_centred_on_the_mode():
    fig, ax = plt.subplots()
    mean = torch.tensor([2.0, -1.0])
    cs = density_contours(ax, lambda p: -0.5 * ((p - mean) ** 2).sum(1), lim=5.0, levels=[0.5])
    pts = np.concatenate([path.vertices for path in cs.get_paths() if len(path.vertices)])
    np.testing.assert_allclose(pts.mean(0), mean.numpy(), atol=0.05)
    r = np.linalg.norm(pts - mean.numpy(), axis=1)  # density 0.5 where |x - mean|^2 = 2 log 2
    np.testing.assert_allclose(r, np.sqrt(2 * np.log(2)), atol=0.05)
    plt.close(fig)


def test_show_image_draws_the_clamped_image_alone():
    image = torch.linspace(-1, 2, 28 * 28).reshape(1, 28, 28)
    fig, ax = plt.subplots()
    show_image(ax, image, "one")
    np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), image[0].clamp(0, 1).numpy())
    assert ax.get_title() == "one" and list(ax.get_xticks()) == []
    plt.close(fig)


def test_density_contourf_fills_around_the_mode():
    fig, ax = plt.subplots()
    mean = torch.tensor([-3.0, 1.0])
    cs = density_contourf(ax, lambda p: -0.5 * ((p - mean) ** 2).sum(1), lim=6.0, levels=[0.5, 1.0])
    pts = np.concatenate([path.vertices for path in cs.get_paths() if len(path.vertices)])
    # the filled band {p >= 0.5} is centred on the mode
    np.testing.assert_allclose(pts.mean(0), mean.numpy(), atol=0.05)
    plt.close(fig)


def test_neighbour_figure_shows_each_query_and_its_neighbours():
    # Catches (planted and seen failing): every column showing the first neighbour.
    gen = torch.Generator().manual_seed(2)
    queries, reference = torch.rand(2, 1, 28, 28, generator=gen), torch.rand(6, 1, 28, 28, generator=gen)
    indices, distances = torch.tensor([[4, 1, 0], [2, 5, 3]]), torch.tensor([[1.0, 2.0, 3.5], [0.5, 0.75, 1.25]])
    fig = neighbour_figure(queries, reference, indices, distances, "title")
    axes = np.array(fig.axes).reshape(2, 4)
    for r in range(2):
        np.testing.assert_array_equal(np.asarray(axes[r, 0].images[0].get_array()), queries[r, 0].numpy())
        for c in range(3):
            shown = np.asarray(axes[r, c + 1].images[0].get_array())
            np.testing.assert_array_equal(shown, reference[indices[r, c], 0].numpy())
            assert axes[r, c + 1].get_title() == f"d = {distances[r, c]:.2f}"
    assert axes[0, 0].get_title() == "sample" and fig._suptitle.get_text() == "title"
    plt.close(fig)
