"""The provider's Processing settings (Settings > Options > Processing > Providers > Landprobe).

``processing.core.ProcessingConfig`` belongs to QGIS's Processing Python plugin; where it cannot be imported the
settings are simply absent and the engine is found from ``LANDPROBE_PYTHON`` or the set-up's record.
"""

from __future__ import annotations

from typing import Any

from .engine_process import SETTING_DESCRIPTION, recorded_engine_python, recorded_engine_python_file

ENGINE_PYTHON_SETTING = "LANDPROBE_ENGINE_PYTHON"


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
    processing_config.addSetting(
        setting_class(
            group,
            ENGINE_PYTHON_SETTING,
            SETTING_DESCRIPTION,
            "",
            valuetype=setting_class.FILE,
            placeholder=placeholder,
        )
    )
    processing_config.readSettings()
    return True


def unregister_settings() -> None:
    """Remove the provider's settings from the Processing options (no-op when absent)."""
    config = _processing_config()
    if config is None:
        return
    processing_config = config[0]
    if ENGINE_PYTHON_SETTING in processing_config.settings:
        processing_config.removeSetting(ENGINE_PYTHON_SETTING)


def engine_python_setting() -> str | None:
    """The "Engine Python interpreter" setting, or None when unset or unavailable."""
    config = _processing_config()
    if config is None:
        return None
    value = config[0].getSetting(ENGINE_PYTHON_SETTING)
    return str(value) if value else None
