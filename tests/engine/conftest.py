"""Fixtures for the engine tests (the bundled sample scene, small seeded rasters made on the fly) and the slow list."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterdata import write_like

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "resources" / "sample"

#: The engine tests marked ``slow``, which ``make test-fast`` (``pytest -m "not slow"``) leaves out; ``make test``
#: runs them all. An entry is a file (``test_x.py``: all its tests), a test (``test_x.py::test_y``: all its
#: parameters) or one parameter of a test (``test_x.py::test_y[id]``).
#:
#: The rule: a test is listed when its call takes over about 1 s with its file run alone on 2 cores
#: (``$ENGINE_PYTHON -m pytest -p no:cacheprovider tests/engine/test_x.py --durations=0``), or when it needs a fixture
#: that takes over 1 s and that no fast test shares (``patch_model`` in test_deep.py, ``large_raster``). Costs paid
#: once per run whatever is selected do not count: imports (the first test of a file to import torch, scikit-learn
#: or torchgeo pays them) and the shared session fixture ``sample_model`` (about 3 s). The contract tests
#: (test_contract.py) stay fast but for the model-file round trips of the encoders with tens of megabytes of weights.
#: ``make test-fast`` names the selected tests over 1 s (``--durations-min=1``): list them here, or make them smaller.
#: Measured in December 2026: the tests left (about 280) take about 1 minute on 2 cores; the listed ones (about 75)
#: most of the suite's 12 minutes.
SLOW = frozenset({
    # region maps: Dask clusters and worker processes started for real (2 to 4 s each)
    "test_region.py",
    "test_region_inputs.py::test_map_region_on_tiles_in_a_bucket_gives_the_map_of_the_local_tiles",
    "test_cluster.py::test_a_cluster_model_maps_a_region_on_dask_as_on_one_raster",
    "test_similarity.py::test_a_similarity_model_maps_a_region_on_dask_as_on_one_raster",
    "test_change.py::test_a_change_model_maps_stacked_dates_on_dask_as_on_one_raster",
    # regression: nested cross-validation over four probes (10 to 40 s)
    "test_regression.py::test_each_regressor_learns_the_quantity_on_held_out_plots",
    "test_regression.py::test_the_automatic_choice_maps_the_quantity_with_its_unit_and_nodata",
    "test_regression.py::test_the_forest_writes_its_uncertainty_beside_the_map_and_the_others_refuse_in_one_sentence",
    "test_regression.py::test_the_uncertainty_maps_a_region_on_dask_as_on_one_raster",
    "test_regression.py::test_a_property_of_the_whole_plot_is_learned_from_its_pixels_together_and_mapped_in_cells",
    "test_regression.py::test_an_encoder_run_on_the_fly_learns_and_maps_the_quantity",
    "test_regression.py::test_a_forest_suggests_where_its_trees_disagree",
    # deep: networks trained for real (test_deep.py's patch_model fixture: 25 s)
    "test_deep.py::test_patch_model_package_holds_safetensors_and_the_recipe",
    "test_deep.py::test_report_has_the_training_curve",
    "test_deep.py::test_patch_map_keeps_the_grid_and_does_not_depend_on_the_window",
    "test_deep.py::test_segmentation_blends_tiles_the_same_whatever_the_window",
    "test_deep.py::test_cancel_keeps_the_last_epoch_and_resume_continues",
    "test_deep.py::test_same_seed_same_weights_on_cpu",
    "test_deep.py::test_onnx_export_matches_pytorch",
    "test_deep.py::test_bad_requests_say_what_to_do",
    "test_deep.py::test_landsat_weights_frozen_then_trained_and_a_vit",
    "test_deep.py::test_your_checkpoint_as_backbone_with_loader_workers",
    "test_deep.py::test_cancel_while_mapping_with_a_deep_model_leaves_nothing",
    "test_deep.py::test_default_patch_network_is_the_small_cnn",
    "test_deep_ddp.py",
    "test_deep_hsi.py",
    "test_deep_logs.py",
    "test_hsi.py::test_network_learns_tiny_problem",
    "test_inputs.py::test_a_deep_model_leaves_out_the_empty_bands_and_maps_with_the_others",
    "test_faults.py::test_a_user_fault_is_one_sentence_and_leaves_nothing[truncated GeoTIFF, fine-tune]",
    "test_faults.py::test_a_user_fault_is_one_sentence_and_leaves_nothing[probe model to ONNX]",
    "test_faults.py::test_a_user_fault_is_one_sentence_and_leaves_nothing[truncated model to ONNX]",
    "test_model_file.py::test_a_deep_model_whose_weights_lie_about_their_shapes_is_refused",
    # embeddings: encoders run over rasters, backbones of tens of megabytes
    "test_contract.py::test_encoder_in_a_model_file[resnet18]",
    "test_contract.py::test_encoder_in_a_model_file[resnet50]",
    "test_contract.py::test_encoder_in_a_model_file[vit_small16]",
    "test_contract.py::test_encoder_in_a_model_file[checkpoint]",
    "test_embeddings.py::test_encoder_contract[resnet50]",
    "test_embeddings.py::test_encoder_contract[vit_small16]",
    "test_embedding_probes.py::test_encoder_on_the_fly_trains_and_maps_on_the_input_grid",
    "test_embedding_probes.py::test_a_cell_window_gets_the_values_of_a_whole_raster_run",
    "test_embedding_probes.py::test_embedding_rasters_train_classify_and_refuse_other_encoders",
    "test_embedding_probes.py::test_alphaearth_int8_is_dequantised_and_its_nodata_kept",
    "test_embedding_probes.py::"
    "test_embeddings_stored_as_whole_numbers_with_scale_and_offset_tags_are_used_as_embeddings",
    # jobs: training and mapping the whole sample, validation schemes, large rasters, engine subprocesses
    "test_train_classify.py::test_validation_schemes_are_recorded_in_the_report",
    "test_train_classify.py::test_reloaded_model_predicts_the_same",
    "test_train_classify.py::test_train_writes_a_safe_model_and_an_honest_report[random_forest]",
    "test_train_classify.py::test_chosen_bands_are_kept_by_the_model_and_picked_again_when_classifying",
    "test_train_classify.py::test_large_raster_gets_overviews_and_matches_small_windows",
    "test_train_classify.py::test_single_band_files_stack_like_the_multiband_raster",
    "test_features.py::test_model_with_indices_classifies_the_sample",
    "test_first_hour.py::test_the_automatic_choice_is_told_in_plain_words",
    "test_inputs.py::test_a_class_on_nodata_is_dropped_cleanly",
    "test_selection.py::test_train_classifier_auto_saves_the_winner_and_reports_the_choice",
    "test_selection.py::test_the_report_lists_every_candidate_and_why_the_winner_won",
    "test_selection.py::test_one_pixel_polygons_are_chosen_on_spatial_blocks",
    "test_insight.py::test_projection_png_with_tsne",
    "test_worker.py::test_train_reports_progress_logs_and_result",
    "test_worker.py::test_cancel_stops_promptly_and_leaves_no_output",
    "test_model_file.py::test_refusing_a_zip_bomb_takes_little_memory",
    "test_model_file.py::test_a_zip_bomb_is_refused_before_it_inflates",
    "test_faults.py::test_a_user_fault_is_one_sentence_and_leaves_nothing[zip bomb as the model]",
    # accel: compiled predictors built for map-sized inputs
    "test_tree_predictor.py::test_maps_through_vector_leaf_trees_equal_the_original_walk",
    "test_tree_predictor.py::test_random_forest_vector_leaf_trees_equal_scikit_learn[compiled]",
    "test_tree_predictor.py::test_boosted_rounds_grafted_or_not_equal_xgboost[compiled-4096]",
    "test_tree_predictor.py::test_classes_alone_are_the_most_probable_classes",
    "test_tree_predictor.py::test_one_switch_turns_every_hand_written_kernel_off",
    "test_tree_predictor.py::test_a_predictor_that_disagrees_is_not_used[compiled]",
    "test_tree_predictor.py::test_compiled_sums_split_over_threads_equal_one_thread",
    "test_probes.py::test_block_search_edge_shapes[24-300-7-10]",
    "test_probes.py::test_block_search_standardises_raw_pixels_and_leaves_nan_to_the_caller",
})


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects on the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests of :data:`SLOW` ``slow``; warn about an entry that names no test of a file that was collected."""
    used, files = set(), set()
    for item in items:
        file = item.path.name
        files.add(file)
        names = (file, f"{file}::{getattr(item, 'originalname', item.name)}", f"{file}::{item.name}")
        hits = SLOW.intersection(names)
        if hits:
            item.add_marker(pytest.mark.slow)
            used |= hits
    stale = sorted(e for e in SLOW - used if e.split("::")[0] in files)
    if stale:
        config.issue_config_time_warning(pytest.PytestConfigWarning(
            f"tests/engine/conftest.py SLOW names tests that do not exist (renamed?): {', '.join(stale)}"), 2)


@pytest.fixture(scope="session")
def sample_raster() -> Path:
    return SAMPLE / "LE70220491999322EDC01_stack.gtif"


@pytest.fixture(scope="session")
def sample_labels() -> Path:
    return SAMPLE / "training_data.shp"


@pytest.fixture(scope="session")
def sample_model(tmp_path_factory: pytest.TempPathFactory, sample_raster: Path, sample_labels: Path) -> Path:
    """A model of the default method trained once on the sample for the tests that only apply one."""
    from engine.jobs.train_classifier import train_classifier

    out = tmp_path_factory.mktemp("model") / "sample.lpmodel"
    train_classifier(str(sample_raster), str(sample_labels), "class", str(out))
    return out


@pytest.fixture(scope="session")
def large_raster(tmp_path_factory: pytest.TempPathFactory, sample_raster: Path) -> Path:
    """The sample tiled 12 x 12 (3000 x 3000 px): long enough to cancel in the middle."""
    with rasterio.open(sample_raster) as src:
        data = src.read()
    big = np.tile(data, (1, 12, 12))
    return write_like(sample_raster, tmp_path_factory.mktemp("large") / "large.tif", big)


@pytest.fixture()
def sample_copy(tmp_path: Path, sample_raster: Path) -> Path:
    """A writable copy of the sample raster."""
    return Path(shutil.copy(sample_raster, tmp_path / sample_raster.name))
