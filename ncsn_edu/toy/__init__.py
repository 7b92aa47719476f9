"""The toy library (Parts I-III): two-dimensional mixtures with exact scores, the score matching
objectives, closed-form answers the chapters measure against, toy networks, their training and
the numbers that judge them."""
