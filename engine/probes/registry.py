"""CPU probes: light classifiers trained on pixel features (raw bands today, embeddings later).

The default is the RBF support vector machine (:mod:`engine.probes.svm`).

A probe is one class in a module of its own, and one entry in :data:`PROBES`: adding one is one file and one
entry. Every probe saves its fitted state as JSON-able parameters, numpy arrays and raw bytes in a non-executable
format (no pickle), see :mod:`engine.probes.model_file`.
"""

from __future__ import annotations

from ..core.errors import InputError
from .base import Probe
from .boosting import XGBoostProbe
from .change import ChangeMagnitude
from .forest import RandomForestProbe
from .kmeans import KMeansClusters
from .knn import KNearestNeighborsProbe
from .logistic import LogisticRegressionProbe
from .regressors import REGRESSORS
from .similarity import SimilarityModel
from .svm import SvmProbe

__all__ = ["DEFAULT_PROBE", "MODELS", "PROBES", "KMeansClusters", "KNearestNeighborsProbe", "LogisticRegressionProbe",
           "RandomForestProbe", "SimilarityModel", "SvmProbe", "XGBoostProbe", "get_probe"]


PROBES: dict[str, type[Probe]] = {
    p.name: p for p in (SvmProbe, LogisticRegressionProbe, XGBoostProbe, RandomForestProbe, KNearestNeighborsProbe)
}
DEFAULT_PROBE = SvmProbe.name
#: Every fitted model a model file may hold: the probes trained on labels, the clusters fitted without them, the
#: similarity to examples, the change between two dates, and the regression probes.
MODELS: dict[str, type[Probe]] = (PROBES | {m.name: m for m in (KMeansClusters, SimilarityModel, ChangeMagnitude)}
                                  | REGRESSORS)


def get_probe(name: str) -> type[Probe]:
    """The probe class registered under ``name``.

    Raises:
        InputError: for an unknown name; the message lists the choices.

    """
    try:
        return PROBES[name]
    except KeyError:
        raise InputError(f"Unknown method {name!r}; choose one of: {', '.join(PROBES)}.") from None
