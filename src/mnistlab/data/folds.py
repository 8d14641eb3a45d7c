"""Stratified k-fold cross-validation: which fold of the training set each image's validation falls in.

Depends only on the labels, the number of folds and the split seed: fold i of two configurations, or of two
seeds, is the same images."""

import random

import torch


def fold_of_each(labels: torch.Tensor, folds: int, split_seed: int) -> torch.Tensor:
    """The fold (0 to folds - 1) of each image. Each class's images, shuffled by `split_seed`, are dealt to the
    folds in turn, the dealing going on from class to class: every fold holds as many images of each class as
    any other, give or take one, and the folds' sizes differ by at most one."""
    if not 2 <= folds <= len(labels):
        raise ValueError(f"{folds} folds of {len(labels)} images")
    rng = random.Random(split_seed)  # Python's shuffle: the same split on every platform and torch version
    order = []
    for label in sorted(set(labels.tolist())):
        members = (labels == label).nonzero().flatten().tolist()
        rng.shuffle(members)
        order += members
    fold = torch.empty(len(labels), dtype=torch.long)
    fold[torch.tensor(order)] = torch.arange(len(labels)) % folds
    return fold
