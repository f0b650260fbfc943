"""The command line is made from the operations: every operation a command, every parameter an option, its help the
parameter's docstring line; wrong command lines get one line; ``--help`` and ``ping`` import nothing heavy."""

from __future__ import annotations

import argparse
import inspect
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.api import OPERATIONS, resolve_operation
from engine.cli import COMMAND_NAMES, NOT_OPTIONS, add_operation_arguments, build_parser, command_names, main, parse
from engine.core.seam import ExitCode

ROOT = Path(__file__).resolve().parents[2]
#: Parameters whose function's docstring has no ``Args:`` line yet (their option has no help): remove an entry when
#: its docstring gets one (the test below fails until then).
UNDOCUMENTED = {"export_onnx": {"model", "output", "opset"}, "import_mat": {"mat", "output", "key"}}
#: Modules that a listing of the commands, or a trivial job, must not import.
HEAVY = ("numpy", "torch", "rasterio", "sklearn", "scipy", "geopandas", "lightning", "xgboost")
#: The engine's layers of jobs: a listing of the commands reads their docstrings without importing them.
JOB_LAYERS = ("engine.jobs.", "engine.deep.", "engine.embeddings.", "engine.assess.", "engine.probes.")


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def options_of(operation: str) -> dict[str, argparse.Action]:
    """The options of an operation's command, by parameter name, from the real command line."""
    command = command_names()[operation]
    parser = subcommands(build_parser(command))[command]
    return {a.dest: a for a in parser._actions if a.option_strings and a.dest != "help"}


def docstring_line(function: Any, name: str) -> str | None:
    """The first line of ``name``'s entry in the ``Args:`` section, markup removed (written apart from the CLI's)."""
    doc = inspect.getdoc(function) or ""
    if "Args:\n" not in doc:
        return None
    found = re.search(rf"^    {name}: (.*)$", doc.split("Args:\n", 1)[1], re.MULTILINE)
    return " ".join(re.sub(r":\w+:`~?([^`]+)`", r"\1", found[1]).replace("``", "").split()) if found else None


#: ``python -m engine <args>`` in a fresh interpreter that then writes its exit code and ``sys.modules`` to a file
#: (``-X importtime`` would miss the modules loaded with :func:`importlib.import_module`).
RUN_AND_LIST_MODULES = """
import json, runpy, sys
out, sys.argv = sys.argv[1], ["engine", *sys.argv[2:]]
code = 0
try:
    runpy.run_module("engine", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
with open(out, "w") as stream:
    json.dump({"code": code, "modules": sorted(sys.modules)}, stream)
"""


def imported(tmp_path: Path, *args: str) -> tuple[set[str], int, str]:
    """The modules ``python -m engine <args>`` imports, its exit code and its standard output."""
    listing = tmp_path / "modules.json"
    done = subprocess.run([sys.executable, "-c", RUN_AND_LIST_MODULES, str(listing), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert listing.is_file(), done.stderr
    found = json.loads(listing.read_text())
    return set(found["modules"]), found["code"], done.stdout


def test_every_operation_is_a_command() -> None:
    assert set(COMMAND_NAMES) <= set(OPERATIONS), "a short name for an operation that does not exist"
    names = command_names()
    assert set(names) == set(OPERATIONS)  # no internal operation: every one is a command
    assert len(set(names.values())) == len(names)
    commands = subcommands(build_parser())
    assert set(commands) == {*names.values(), "worker"}
    for operation, name in names.items():
        assert commands[name].get_default("_operation") == operation
    assert {"train", "classify", "assess", "embed", "finetune", "export-onnx", "label-polygons", "import-mat",
            "status", "ping"} <= set(commands)  # the names the README documents


def test_every_operation_lives_in_the_jobs_module_named_after_its_plugin_algorithm() -> None:
    root = Path(__file__).resolve().parents[2]
    algorithms = {p.stem for p in (root / "plugin" / "algorithms").glob("*.py")}
    for operation, target in OPERATIONS.items():
        assert isinstance(target, str) and target.startswith("jobs."), operation
        module = target.partition(":")[0].removeprefix("jobs.")
        assert module in algorithms, f"{operation}: engine/jobs/{module}.py has no plugin/algorithms/{module}.py"
        assert callable(resolve_operation(operation))
    jobs = {p.stem for p in (root / "engine" / "jobs").glob("*.py")} - {"__init__"}
    assert jobs == {t.partition(":")[0].removeprefix("jobs.") for t in OPERATIONS.values() if isinstance(t, str)}


def test_engine_status_names_a_device_it_can_use() -> None:
    from engine.api import call_operation
    from engine.core.feedback import Feedback

    status = call_operation("engine_status", {}, Feedback())
    assert status["default_device"] in {"cpu", "cuda", "mps"}, status["default_device"]
    assert status["devices"][0]["type"] == "cpu" and status["packages"]["numpy"]


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_every_parameter_is_an_option_explained_by_its_docstring_line(operation: str) -> None:
    function = resolve_operation(operation)
    parameters = {n: p for n, p in inspect.signature(function).parameters.items() if n not in NOT_OPTIONS}
    options = options_of(operation)
    assert set(options) == set(parameters)
    for name, parameter in parameters.items():
        option = options[name]
        assert option.option_strings == [f"--{name.replace('_', '-')}"]
        assert option.required == (parameter.default is inspect.Parameter.empty), name
        line = docstring_line(function, name)
        if name in UNDOCUMENTED.get(operation, ()):
            assert line is None, f"{operation}.{name} is documented now: remove it from UNDOCUMENTED"
            continue
        assert line, f"{operation}: parameter {name} has no line in the docstring's Args section"
        shown = " ".join(re.sub(r" \{[^{}]*\}", "", option.help or "").replace("%%", "%").split())
        assert shown.startswith(line), (name, shown, line)


def test_some_help_texts_exactly() -> None:
    train = options_of("train_classifier")
    assert train["n_folds"].help == "folds of group_kfold and spatial_blocks. (default: 5)"
    assert train["output_model"].help == "where to write the .lpmodel file."
    assert "{svm" in train["method"].help and "knn" in train["method"].help  # the names of PROBES, as choices
    assert train["indices"].help.startswith("add the normalised-difference indices")


def test_a_flag_that_defaults_to_true_can_be_turned_off() -> None:
    def job(raster: str, stretch: bool = True, feedback: Any = None) -> dict[str, Any]:
        """A job.

        Args:
            raster: the raster.
            stretch: stretch the values.
            feedback: progress.

        """
        return {}

    parser = argparse.ArgumentParser()
    add_operation_arguments(parser, job)
    assert vars(parser.parse_args(["--raster", "a", "--no-stretch"])) == {"raster": "a", "stretch": False}
    assert vars(parser.parse_args(["--raster", "a"])) == {"raster": "a"}


def test_values_are_typed_and_only_given_options_are_passed() -> None:
    base = ["--labels", "l.gpkg", "--field", "class", "--output-model", "m.lpmodel"]
    operation, params = parse(["train", "--raster", "a.tif", *base])
    assert operation == "train_classifier"
    assert params == {"raster": "a.tif", "labels": "l.gpkg", "field": "class", "output_model": "m.lpmodel"}
    _, params = parse(["train", "--raster", "b1.tif", "b2.tif", *base, "--indices", "--bands", "1", "2", "7",
                       "--n-folds", "3", "--min-coverage", "0.25", "--class-colors", '{"1": "#ff0000"}'])
    assert params["raster"] == ["b1.tif", "b2.tif"] and params["bands"] == [1, 2, 7]
    assert params["indices"] is True and params["n_folds"] == 3 and params["min_coverage"] == 0.25
    assert params["class_colors"] == {"1": "#ff0000"}
    assert parse(["status"]) == ("engine_status", {})
    assert parse(["finetune", "--raster", "a.tif", *base, "--resume"])[1]["resume"] is True


def readme_command_lines() -> list[str]:
    """The ``$ENGINE -m engine ...`` lines of the README's section on the command line, continuations joined."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## The engine without QGIS", 1)[1].split("\n## ", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", section)
    return [line.strip() for line in joined.splitlines() if line.startswith("$ENGINE -m engine ")]


def test_the_readme_command_lines_parse() -> None:
    lines = readme_command_lines()
    assert len(lines) > 10
    for line in lines:
        if " ... " in line:  # an elided example
            continue
        argv = shlex.split(line, comments=True)[3:]
        if "--help" in argv:
            with pytest.raises(SystemExit) as done:
                parse(argv)
            assert done.value.code == 0
            continue
        operation, params = parse(argv)
        inspect.signature(resolve_operation(operation)).bind(**params)  # the function accepts exactly these


@pytest.mark.parametrize(("argv", "option"), [
    (["--n-folds", "abc"], "--n-folds"),
    (["--min-coverage", "most"], "--min-coverage"),
    (["--class-colors", "[1]"], "--class-colors"),
    (["--bands", "one"], "--bands"),
    (["--nope", "1"], "--nope"),
])
def test_a_wrong_value_is_one_line_naming_the_option(argv: list[str], option: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--raster", "a.tif", "--labels", "l.gpkg", "--field", "class", "--output-model",
                 "m.lpmodel", *argv])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert len(err.strip().splitlines()) == 1 and err.startswith("Error: ") and option in err, err
    assert "train --help" in err


def test_a_missing_option_or_an_unknown_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--raster", "a.tif"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--labels" in err and "--output-model" in err
    assert main(["paint"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "'paint'" in err and "'train'" in err


def test_a_value_the_operation_refuses_is_its_one_sentence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--raster", str(tmp_path / "a.tif"), "--labels", str(tmp_path / "l.gpkg"), "--field", "c",
                 "--output-model", str(tmp_path / "m.lpmodel"), "--method", "bogus"])
    err = capsys.readouterr().err
    assert code == ExitCode.ERROR
    assert err.strip().splitlines() == [err.strip()] and "method 'bogus'" in err and "svm" in err


def test_help_lists_the_commands_without_importing_a_job_module(tmp_path: Path) -> None:
    modules, code, out = imported(tmp_path, "--help")
    assert code == 0
    for name in command_names().values():
        assert f"\n    {name}" in out
    assert "Train method on features" in out  # a summary is its docstring's first line
    assert not [m for m in modules if m.split(".")[0] in HEAVY]
    assert not [m for m in modules if m.startswith(JOB_LAYERS)]


def test_ping_imports_nothing_heavy(tmp_path: Path) -> None:
    modules, code, out = imported(tmp_path, "ping")
    assert code == 0 and '"pong": true' in out
    assert not [m for m in modules if m.split(".")[0] in HEAVY]
    # its own job module, and no other job's nor the layers they pull in
    assert [m for m in modules if m.startswith(JOB_LAYERS)] == ["engine.jobs.engine_status"]


def test_the_options_of_one_command_import_its_module_but_not_the_stack(tmp_path: Path) -> None:
    modules, code, out = imported(tmp_path, "train", "--help")
    assert code == 0 and "--output-model" in out and "--class-weight" in out
    assert "engine.jobs.train_classifier" in modules
    # numpy and rasterio are imported at the top of the job's modules (0.3 s): the rest of the stack is not.
    assert not [m for m in modules if m.split(".")[0] in HEAVY and m.split(".")[0] not in ("numpy", "rasterio")]
