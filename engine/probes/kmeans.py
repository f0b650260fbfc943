"""Clusters found without labels: k-means on a seeded sample of pixels, saved and applied like a probe.

A cluster model is a :class:`~engine.probes.base.Probe` whose classes are the clusters, so that it is saved as a
Landprobe model file and applied by *Classify raster* and *Map region* (window by window, or block by block on a Dask
cluster) with no code of its own. It is fitted by :func:`fit_clusters`, never by *Train classifier*: it is not in
:data:`engine.probes.registry.PROBES`, only in :data:`engine.probes.registry.MODELS`, the models a file may hold.

Band values are standardised before k-means (bands in other units would weigh unequally); embeddings are used as
they are (their dimensions share one scale). ``k`` is given, or chosen over a range by the Calinski-Harabasz score
of each fit (scikit-learn's ``calinski_harabasz_score``: the spread between clusters over the spread within them,
corrected for k). The silhouette score (on a seeded subsample) is reported beside it, for information: it merges
two close clusters when others are far apart (a seeded scene of four covers, two of them alike, scores best at
k = 3 by silhouette and at k = 4 by Calinski-Harabasz and by the Bayesian information criterion of X-means). Every
score goes into the report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.errors import InputError
from ..core.numbers import mean_and_scale
from .base import Probe, State

logger = logging.getLogger(__name__)

#: Points the silhouette score is computed on (it costs points squared).
SILHOUETTE_POINTS = 4000


class KMeansClusters(Probe):
    """k-means centres on (optionally standardised) features; ``predict`` gives the nearest centre."""

    name = "kmeans"
    label = "k-means clusters"

    def __init__(self, k: int = 8, standardise: bool = True, seed: int = 0) -> None:
        """Keep the number of clusters, whether to standardise the features, and the seed."""
        self.k, self.standardise, self.seed = k, standardise, seed

    def fit(self, x: np.ndarray, y: np.ndarray | None = None, n_classes: int = 0) -> KMeansClusters:
        """Fit scikit-learn's k-means (k-means++ starts, 4 of them, seeded) on ``x``; ``y`` is ignored."""
        # Lazy: scikit-learn takes half a second to import.
        from sklearn.cluster import KMeans

        x = np.asarray(x, dtype="float64")
        if self.standardise:
            self.mean_, self.scale_ = mean_and_scale(x)
        else:
            self.mean_, self.scale_ = np.zeros(x.shape[1]), np.ones(x.shape[1])
        z = (x - self.mean_) / self.scale_
        model = KMeans(n_clusters=self.k, n_init=4, random_state=self.seed).fit(z)
        # clusters numbered by size, largest first: the same scene gives the same legend order
        order = np.argsort(-np.bincount(model.labels_, minlength=self.k), kind="stable")
        self.centres_ = model.cluster_centers_[order].astype("float32")
        self.inertia_ = float(model.inertia_)
        distances = self._distances(x).min(axis=1)
        # the spread that turns distances into memberships: the mean squared distance to the nearest centre
        self.temperature_ = float(max(np.mean(distances), 1e-12))
        return self

    def _distances(self, x: np.ndarray) -> np.ndarray:
        """Squared distances (n, k) from the standardised ``x`` to the centres."""
        z = ((np.asarray(x, dtype="float32") - self.mean_.astype("float32")) / self.scale_.astype("float32"))
        d = (z * z).sum(axis=1, keepdims=True) - 2 * z @ self.centres_.T + (self.centres_ ** 2).sum(axis=1)
        return np.maximum(d, 0)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Soft memberships: ``exp(-(d² - d²_min) / t)`` normalised, ``t`` the training pixels' mean ``d²_min``.

        They are not probabilities of anything observed; the *confidence* map (the membership of the pixel's
        cluster) is high in a cluster's core and falls towards the boundaries between clusters.
        """
        d = self._distances(x)
        d -= d.min(axis=1, keepdims=True)
        w = np.exp(-d / self.temperature_)
        return (w / w.sum(axis=1, keepdims=True)).astype("float32")

    def predict(self, x: np.ndarray, proba: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """The nearest centre of each sample and, when ``proba``, the memberships."""
        distances = self._distances(x)
        nearest = distances.argmin(axis=1)  # the same class whether memberships are asked for or not
        if not proba:
            return nearest, None
        d = distances - distances.min(axis=1, keepdims=True)
        w = np.exp(-d / self.temperature_)
        return nearest, (w / w.sum(axis=1, keepdims=True)).astype("float32")

    def state(self) -> State:
        """Centres, standardisation and temperature as arrays and numbers."""
        arrays = {"centres": self.centres_, "mean": self.mean_, "scale": self.scale_}
        return {"k": self.k, "standardise": self.standardise, "seed": self.seed,
                "temperature": self.temperature_, "inertia": self.inertia_}, arrays, {}

    @classmethod
    def from_state(cls, params: dict[str, Any], arrays: dict[str, np.ndarray], blobs: dict[str, bytes]) -> Probe:
        """Rebuild from arrays."""
        probe = cls(k=int(params["k"]), standardise=bool(params["standardise"]), seed=int(params.get("seed", 0)))
        probe.centres_ = arrays["centres"].astype("float32")
        probe.mean_, probe.scale_ = arrays["mean"], arrays["scale"]
        probe.temperature_ = float(params["temperature"])
        probe.inertia_ = float(params.get("inertia", 0.0))
        return probe


@dataclass
class ClusterChoice:
    """The fitted clusters and how ``k`` was chosen."""

    model: KMeansClusters
    k: int
    #: ``{"k", "calinski_harabasz", "silhouette", "inertia"}``: a list each, one entry per ``k`` tried.
    scores: dict[str, list[float]]
    criterion: str


def fit_clusters(x: np.ndarray, k: int = 0, k_min: int = 2, k_max: int = 10, standardise: bool = True,
                 seed: int = 0, check_cancel: Any = None) -> ClusterChoice:
    """Fit k-means with ``k`` clusters, or with each ``k`` in ``k_min..k_max`` and keep the best Calinski-Harabasz.

    Raises:
        InputError: for a range that cannot be used or fewer samples than clusters.

    """
    # Lazy: scikit-learn takes half a second to import.
    from sklearn.metrics import calinski_harabasz_score, silhouette_score

    ks = [k] if k else list(range(k_min, k_max + 1))
    if not ks or min(ks) < 2:
        raise InputError(f"The number of clusters must be at least 2 (got {k or f'{k_min} to {k_max}'}); give 0 to "
                         "choose it automatically.")
    if len(x) < 10 * max(ks):
        raise InputError(f"Only {len(x)} valid pixels were sampled, too few for {max(ks)} clusters: sample more "
                         "pixels or ask for fewer clusters.")
    rng = np.random.default_rng(seed)
    subset = rng.choice(len(x), size=min(len(x), SILHOUETTE_POINTS), replace=False)
    scores: dict[str, list[float]] = {"k": [], "calinski_harabasz": [], "silhouette": [], "inertia": []}
    best: KMeansClusters | None = None
    best_score = -np.inf
    for n in ks:
        if check_cancel is not None:
            check_cancel()
        model = KMeansClusters(n, standardise, seed).fit(x)
        z = (x - model.mean_) / model.scale_
        labels = model.predict(x, proba=False)[0]
        several = len(np.unique(labels)) > 1
        score = float(calinski_harabasz_score(z, labels)) if several else 0.0
        # the subset may miss a tiny cluster (a few outlier pixels) and hold one label: no silhouette then
        some = len(np.unique(labels[subset])) > 1
        silhouette = float(silhouette_score(z[subset], labels[subset])) if some else -1.0
        scores["k"].append(n)
        scores["calinski_harabasz"].append(round(score, 2))
        scores["silhouette"].append(round(silhouette, 4))
        scores["inertia"].append(round(model.inertia_, 2))
        logger.info("k = %d: Calinski-Harabasz %.1f, silhouette %.3f.", n, score, silhouette)
        if score > best_score:
            best, best_score = model, score
    assert best is not None
    criterion = "given" if k else f"the highest Calinski-Harabasz score among k = {k_min} to {k_max}"
    return ClusterChoice(best, best.k, scores, criterion)
