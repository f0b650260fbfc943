#!/usr/bin/env bash
# The main job: the shipped graphical model (train a probe -> classify the raster) run headless by qgis_process on
# the bundled Landsat 7 sample. Writes into output/demo/ (or $LANDPROBE_DEMO_DIR) and prints what it wrote.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

out="$(realpath -m "${LANDPROBE_DEMO_DIR:-$ROOT/output/demo}")"
method="${LANDPROBE_DEMO_METHOD:-5}"  # 5 = automatic (default), 4 = support vector machine, 0 = logistic regression
sample="$ROOT/resources/sample"
model3="$ROOT/resources/models/raw_band_probe.model3"
mkdir -p "$out"

# qgis_process loads a Python plugin only from QGIS_PLUGINPATH and only when the profile enables it: use a
# throw-away profile so that the user's own QGIS settings are neither read nor changed.
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/plugins" "$work/profile/profiles/default/QGIS"
ln -s "$ROOT" "$work/plugins/landprobe"
printf '[PythonPlugins]\nlandprobe=true\n' > "$work/profile/profiles/default/QGIS/QGIS3.ini"
export QT_QPA_PLATFORM=offscreen QGIS_PLUGINPATH="$work/plugins" QGIS_CUSTOM_CONFIG_PATH="$work/profile" \
  LANDPROBE_PYTHON="$ENGINE_PYTHON" XDG_RUNTIME_DIR="$work/runtime"

log "Running $(basename "$model3") with $(basename "$(qgis_process_bin)") on the Landsat 7 sample"
start=$(date +%s.%N)
if ! "$(qgis_process_bin)" --json run "$model3" -- \
    raster="$sample/LE70220491999322EDC01_stack.gtif" labels="$sample/training_data.shp" field=class \
    method="$method" train:trained_model="$out/model.lpmodel" \
    train:validation_report="$out/validation_report.json" classify:classified="$out/classified.tif" \
    > "$work/result.json" 2> "$work/stderr.log"; then
  grep -v -e "XDG_RUNTIME_DIR" -e "setapi() is deprecated" "$work/stderr.log" >&2 || true
  log "The demo failed (qgis_process's messages are above)."
  exit 1
fi
cp "$work/result.json" "$out/qgis_process_result.json"

/usr/bin/python3 - "$out" "$start" <<'PY'
import json, sys, time
from pathlib import Path

out, seconds = Path(sys.argv[1]), time.time() - float(sys.argv[2])
report = json.loads((out / "validation_report.json").read_text())
validation = report["validation"]
print(f"\nLandprobe demo finished in {seconds:.1f} s (qgis_process running resources/models/raw_band_probe.model3).")
print(f"  classified GeoTIFF: {out / 'classified.tif'}")
print(f"  accuracy report:    {out / 'validation_report.html'} (and .json)")
print(f"  model file:         {out / 'model.lpmodel'}")
print(f"Held-out polygons ({validation['n_test_polygons']} polygons, {validation['n']} pixels, method "
      f"{report.get('method_label') or report.get('method_name', report['method'])}): overall accuracy {validation['overall_accuracy']:.3f}, kappa {validation['kappa']:.3f}")
PY
