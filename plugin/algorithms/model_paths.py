"""Where trained models go, and how the next step finds them again.

A model is meant to be used again (*Classify raster*, another day, another scene), so a trained model is never left
in Processing's temporary folder, which QGIS empties on exit: a *Trained model* left as a temporary file is written
to the models folder instead (the Processing setting, else ``models/`` beside the saved project, else
``~/Landprobe/models``), under a name made from the label layer's. A name typed without ``.lpmodel`` gets the
extension, and every algorithm that reads models also accepts a file without it. The last model trained is
remembered in the user's settings and offered as the *Model* of *Classify raster* and *Export ONNX*.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterFile,
    QgsProcessingUtils,
    QgsProject,
    QgsSettings,
)

from ..settings import models_folder_setting

EXTENSION = ".lpmodel"
#: Models are read from files with any name: a model saved without the extension must not be refused.
MODEL_FILTER = "Landprobe model (*.lpmodel);;All files (*)"
#: Where the path of the last model trained is kept (QGIS user settings).
LAST_MODEL_KEY = "landprobe/last_model"


def model_parameter(name: str, description: str, optional: bool = False) -> QgsProcessingParameterFile:
    """A *Model* file parameter whose default is the last model trained (when that file still exists).

    An ``optional`` one has no default: leaving it empty means no model.
    """
    return QgsProcessingParameterFile(name, description, behavior=QgsProcessingParameterFile.Behavior.File,
                                      fileFilter=MODEL_FILTER, defaultValue=None if optional else last_model(),
                                      optional=optional)


def last_model() -> str | None:
    """The last model trained in this QGIS profile, or None when there is none or its file is gone."""
    path = QgsSettings().value(LAST_MODEL_KEY, "", type=str)
    return path if path and os.path.isfile(path) else None


def remember_model(path: str) -> None:
    """Offer ``path`` as the default model of the next step."""
    if path and os.path.isfile(path):
        QgsSettings().setValue(LAST_MODEL_KEY, path)


def models_folder() -> Path:
    """The folder for models not given a place: the setting, else ``models/`` beside the project, else home."""
    configured = models_folder_setting()
    if configured:
        return Path(configured).expanduser()
    home = QgsProject.instance().homePath() if QgsProject.instance() is not None else ""
    if home and os.path.isdir(home) and os.access(home, os.W_OK):
        return Path(home) / "models"
    return Path.home() / "Landprobe" / "models"


def is_temporary(path: str) -> bool:
    """Whether ``path`` is a Processing temporary output (QGIS deletes it on exit)."""
    if not path or path == QgsProcessing.TEMPORARY_OUTPUT:
        return True
    folder = os.path.realpath(QgsProcessingUtils.tempFolder())
    return os.path.realpath(path).startswith(folder + os.sep)


def in_temporary_folder(path: str) -> bool:
    """Whether ``path`` lies in the system's temporary folder (emptied at restart on many systems)."""
    return os.path.realpath(path).startswith(os.path.realpath(tempfile.gettempdir()) + os.sep)


def _stem(label_name: str) -> str:
    """A file-name-safe stem from a layer or file name."""
    stem = re.sub(r"[^\w.-]+", "_", Path(label_name).stem).strip("._") or "landprobe"
    return f"{stem}_model"


def model_destination(algorithm: Any, parameters: dict[str, Any], name: str, context: QgsProcessingContext,
                      feedback: QgsProcessingFeedback, label_name: str) -> str:
    """The file a trained model is written to: the user's, with ``.lpmodel``, or one in the models folder.

    Args:
        algorithm: the algorithm reading its parameter ``name`` (a file destination).
        parameters: the algorithm's parameters.
        name: the parameter's name.
        context: the Processing context.
        feedback: where the choice is logged.
        label_name: the label layer's name or file, for the name of a model saved in the models folder.

    """
    path = algorithm.parameterAsFileOutput(parameters, name, context)
    if is_temporary(path):
        folder = models_folder()
        folder.mkdir(parents=True, exist_ok=True)
        stem, n = _stem(label_name), 1
        while (folder / f"{stem}{'' if n == 1 else f'_{n}'}{EXTENSION}").exists():
            n += 1
        path = str(folder / f"{stem}{'' if n == 1 else f'_{n}'}{EXTENSION}")
        feedback.pushInfo(f"The model will be saved in the models folder, not as a temporary file: {path} (set the "
                          "folder in Settings > Options > Processing > Providers > Landprobe).")
    elif not path.lower().endswith(EXTENSION):
        path += EXTENSION
        feedback.pushInfo(f"The model is saved as {path} (Landprobe models end in {EXTENSION}).")
    return path


def report_model(feedback: QgsProcessingFeedback, path: str | None) -> None:
    """The end of the log: where the model is, that the next step offers it, and a warning for a temporary folder."""
    if not path or not os.path.isfile(path):
        return
    remember_model(path)
    feedback.pushInfo(f"Model saved: {path}. Classify raster offers it as its model until the next one is trained.")
    if in_temporary_folder(path):
        feedback.reportError(f"The model is in a temporary folder ({os.path.dirname(path)}), which the system may "
                             "empty: copy it to a folder of yours, or train it again with Trained model set there.",
                             False)
