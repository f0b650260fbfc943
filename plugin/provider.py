"""The Landprobe Processing provider: a flat list of algorithm classes."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from .algorithms.assess_accuracy import AssessAccuracyAlgorithm
from .algorithms.change import ChangeAlgorithm
from .algorithms.classify_raster import ClassifyRasterAlgorithm
from .algorithms.cluster import ClusterAlgorithm
from .algorithms.engine_status import EngineStatusAlgorithm
from .algorithms.export_onnx import ExportOnnxAlgorithm
from .algorithms.extract_embeddings import ExtractEmbeddingsAlgorithm
from .algorithms.finetune import FinetuneAlgorithm
from .algorithms.hyperspectral import ImportMatAlgorithm, LabelPolygonsAlgorithm
from .algorithms.install_engine import InstallEngineAlgorithm
from .algorithms.map_region import MapRegionAlgorithm
from .algorithms.similarity import SimilarityAlgorithm
from .algorithms.suggest_labels import SuggestLabelsAlgorithm
from .algorithms.train_classifier import TrainClassifierAlgorithm
from .algorithms.train_regressor import TrainRegressorAlgorithm
from .icons import ICON_PATH, provider_icon
from .settings import register_settings, unregister_settings

ALGORITHMS = [
    TrainClassifierAlgorithm,
    TrainRegressorAlgorithm,
    ClassifyRasterAlgorithm,
    MapRegionAlgorithm,
    AssessAccuracyAlgorithm,
    ExtractEmbeddingsAlgorithm,
    ClusterAlgorithm,
    SimilarityAlgorithm,
    ChangeAlgorithm,
    SuggestLabelsAlgorithm,
    FinetuneAlgorithm,
    ExportOnnxAlgorithm,
    ImportMatAlgorithm,
    LabelPolygonsAlgorithm,
    EngineStatusAlgorithm,
    InstallEngineAlgorithm,
]


class LandprobeProvider(QgsProcessingProvider):
    """Provider ``landprobe``: classification with embeddings, probes and deep models."""

    def id(self) -> str:
        """The provider id, the prefix of every algorithm id."""
        return "landprobe"

    def name(self) -> str:
        """The name shown in the toolbox and the settings."""
        return "Landprobe"

    def longName(self) -> str:
        """A longer name for tooltips."""
        return "Landprobe: embeddings, probes and deep models"

    def icon(self) -> QIcon:
        """The provider icon."""
        return provider_icon()

    def svgIconPath(self) -> str:
        """The path of the SVG icon."""
        return str(ICON_PATH)

    def load(self) -> bool:
        """Register the provider's Processing settings, then load the algorithms."""
        register_settings(self.name(), self.icon())
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        """Remove the provider's Processing settings."""
        unregister_settings()

    def loadAlgorithms(self) -> None:
        """Add one instance of every algorithm class."""
        for algorithm_class in ALGORITHMS:
            self.addAlgorithm(algorithm_class())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:
        """The engine writes GeoTIFF only."""
        return ["tif"]

    def supportedOutputVectorLayerExtensions(self) -> list[str]:
        """The engine writes GeoPackage only."""
        return ["gpkg"]

    def supportsNonFileBasedOutput(self) -> bool:
        """The engine writes files: no database tables or layers inside a GeoPackage chosen in the dialog."""
        return False

    def defaultVectorFileExtension(self, hasGeometry: bool = True) -> str:
        """GeoPackage by default."""
        return "gpkg"

    def defaultRasterFileExtension(self) -> str:
        """GeoTIFF by default."""
        return "tif"
