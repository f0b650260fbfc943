"""The provider's Processing settings (Settings > Options > Processing > Providers > Landprobe).

``processing.core.ProcessingConfig`` belongs to QGIS's Processing Python plugin; where it cannot be imported the
settings are simply absent and the engine is found from ``LANDPROBE_PYTHON`` or the set-up's record.
"""

from __future__ import annotations

from typing import Any

from .engine_process import SETTING_DESCRIPTION, recorded_engine_python, recorded_engine_python_file, seam

ENGINE_PYTHON_SETTING = "LANDPROBE_ENGINE_PYTHON"
DEVICE_SETTING = seam.DEVICE_VARIABLE  # the setting is named after the variable the engine reads
THREADS_SETTING = seam.THREADS_VARIABLE
SCHEDULER_SETTING = seam.SCHEDULER_VARIABLE
CACHE_SETTING = "LANDPROBE_CACHE"
MODELS_SETTING = "LANDPROBE_MODELS_FOLDER"
DEVICES = ["auto", "cpu", "cuda"]


def _processing_config() -> tuple[Any, Any] | None:
    """``(ProcessingConfig, Setting)`` from the Processing plugin, or None when it is unavailable."""
    try:
        from processing.core.ProcessingConfig import ProcessingConfig, Setting
    except Exception:  # the Processing plugin is missing or broken: run without settings
        return None
    return ProcessingConfig, Setting


def register_settings(group: str, icon: Any = None) -> bool:
    """Add the provider's settings to the Processing options under ``group``; False when Processing is absent.

    The default is empty, with the interpreter recorded by ``make setup`` shown as the placeholder: the Processing
    options dialog saves every value it shows, so a default path would be frozen there and would hide a later
    ``make setup``.
    """
    config = _processing_config()
    if config is None:
        return False
    processing_config, setting_class = config
    recorded = recorded_engine_python()
    placeholder = (
        f"Leave blank to use {recorded} (recorded by make setup)"
        if recorded
        else f"Leave blank to use the interpreter recorded in {recorded_engine_python_file()} by make setup"
    )
    if icon is not None:
        processing_config.settingIcons[group] = icon
    # The options tree shows a blank value as nothing at all: the label says which engine a blank one uses.
    in_use = f"{SETTING_DESCRIPTION} (blank: {recorded})" if recorded else SETTING_DESCRIPTION
    processing_config.addSetting(
        setting_class(
            group,
            ENGINE_PYTHON_SETTING,
            in_use,
            "",
            valuetype=setting_class.FILE,
            placeholder=placeholder,
        )
    )
    processing_config.addSetting(setting_class(
        group, DEVICE_SETTING, "Device for encoders and deep models (auto: the GPU when there is one)", "auto",
        valuetype=setting_class.SELECTION, options=DEVICES))
    processing_config.addSetting(setting_class(
        group, THREADS_SETTING, "Engine threads (0 = all cores)", 0, valuetype=setting_class.INT))
    processing_config.addSetting(setting_class(
        group, SCHEDULER_SETTING, "Dask scheduler for Map region and for reading labels in Train classifier "
        "(e.g. tcp://10.0.0.5:8786; empty: a local cluster for Map region, the engine itself for training)", "",
        valuetype=setting_class.STRING))
    processing_config.addSetting(setting_class(
        group, CACHE_SETTING, "Folder for downloaded model weights (empty: torch's default, ~/.cache/torch)", "",
        valuetype=setting_class.FOLDER))
    processing_config.addSetting(setting_class(
        group, MODELS_SETTING, "Folder for trained models left as temporary files (empty: a models folder beside "
        "the project, else ~/Landprobe/models)", "", valuetype=setting_class.FOLDER))
    processing_config.readSettings()
    return True


def unregister_settings() -> None:
    """Remove the provider's settings from the Processing options (no-op when absent)."""
    config = _processing_config()
    if config is None:
        return
    processing_config = config[0]
    for name in (ENGINE_PYTHON_SETTING, DEVICE_SETTING, THREADS_SETTING, SCHEDULER_SETTING, CACHE_SETTING,
                 MODELS_SETTING):
        if name in processing_config.settings:
            processing_config.removeSetting(name)


def engine_python_setting() -> str | None:
    """The "Engine Python interpreter" setting, or None when unset or unavailable."""
    config = _processing_config()
    if config is None:
        return None
    value = config[0].getSetting(ENGINE_PYTHON_SETTING)
    return str(value) if value else None


def engine_preferences() -> dict[str, str]:
    """The user's device, threads, Dask scheduler and cache settings as environment variables for the engine.

    An empty scheduler setting passes nothing, so that ``LANDPROBE_DASK_SCHEDULER`` set in the environment (batch
    jobs) still reaches the engine.
    """
    config = _processing_config()
    if config is None:
        return {}
    get = config[0].getSetting
    device = get(DEVICE_SETTING)
    if isinstance(device, int) and 0 <= device < len(DEVICES):  # SELECTION settings may read back as an index
        device = DEVICES[device]
    threads = get(THREADS_SETTING)
    cache = get(CACHE_SETTING)
    scheduler = str(get(SCHEDULER_SETTING) or "").strip()
    return {seam.DEVICE_VARIABLE: str(device or ""), seam.THREADS_VARIABLE: str(int(threads)) if threads else "",
            "TORCH_HOME": str(cache or "")} | ({seam.SCHEDULER_VARIABLE: scheduler} if scheduler else {})


def models_folder_setting() -> str | None:
    """The "Folder for trained models" setting (``LANDPROBE_MODELS_FOLDER`` in the environment wins), or None."""
    import os

    if os.environ.get(MODELS_SETTING):
        return os.environ[MODELS_SETTING]
    config = _processing_config()
    if config is None:
        return None
    value = config[0].getSetting(MODELS_SETTING)
    return str(value) if value else None
