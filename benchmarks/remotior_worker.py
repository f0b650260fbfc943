"""Run one Remotior Sensus classification (run with the Python of a venv where ``remotior-sensus`` is installed).

Usage: ``python remotior_worker.py --bands b1.tif ... --roi train.gpkg --algorithm "random forest" --output out.tif``.
Follows Remotior Sensus' documented API: ``Session()``, a band set, a spectral signatures catalog filled from the
ROI vector with ``import_vector`` (macroclass = integer field ``code``, names from ``class``), then
``band_classification`` with every other argument left at its default. Prints one JSON line with stage timings.
``--no-signature-stats`` skips the per-ROI mean spectra that ``import_vector`` computes by default (about 45 s for
the sample's 30 polygons on 2 cores); the classifiers are trained on the ROI pixels either way.
"""

import argparse
import json
import time


def main() -> None:
    """Parse the arguments, train and classify, print timings."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--bands", nargs="+", required=True)
    parser.add_argument("--roi", required=True)
    parser.add_argument("--algorithm", required=True, help="'random forest' or 'multi-layer perceptron'")
    parser.add_argument("--output", required=True)
    parser.add_argument("--n-processes", type=int, default=None)
    parser.add_argument("--no-signature-stats", dest="calculate_signature", action="store_false",
                        help="import the ROIs without computing their mean spectra (much faster)")
    parser.add_argument("--ram", type=int, default=None, help="MB of RAM Remotior Sensus may use")
    args = parser.parse_args()
    t0 = time.perf_counter()
    import remotior_sensus

    kwargs = {k: v for k, v in (("n_processes", args.n_processes), ("available_ram", args.ram)) if v}
    rs = remotior_sensus.Session(progress_callback=lambda *a, **k: None, **kwargs)
    t1 = time.perf_counter()
    catalog = rs.bandset_catalog()
    catalog.create_bandset(args.bands, bandset_number=1)
    signatures = rs.spectral_signatures_catalog(bandset=catalog.get(1))
    signatures.import_vector(file_path=args.roi, macroclass_field="code", class_field="code",
                             macroclass_name_field="class", class_name_field="class",
                             calculate_signature=args.calculate_signature)
    t2 = time.perf_counter()
    out = rs.band_classification(input_bands=args.bands, output_path=args.output, spectral_signatures=signatures,
                                 algorithm_name=args.algorithm)
    t3 = time.perf_counter()
    rs.close()
    print(json.dumps({"ok": bool(out.check), "path": out.path, "session_s": t1 - t0, "signatures_s": t2 - t1,
                      "classification_s": t3 - t2}))


if __name__ == "__main__":  # Remotior Sensus starts worker processes: the guard is required
    main()
