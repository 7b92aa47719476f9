"""The image library (Part IV and the capstone): the paper's networks, image data, the trainer and
its pieces (batches, the train step, checkpoints, precision), sampling and inpainting of images,
the authors' checkpoints, and sample quality on a CPU."""
