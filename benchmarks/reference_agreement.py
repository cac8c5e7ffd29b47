"""Does the classic row's approximate SVM agree with the exact one? (Nystroem + linear SVM vs libsvm's RBF SVM)

Above ``ClassicSettings.exact_max_train_rows`` training rows the classic reference approximates the RBF kernel
(``emoaug.classifiers.classic``). This script fits both models on the same speaker-independent folds of a real
corpus (``make_splits(items, "kfold", n_folds=5, seed=0)``, C chosen as runs choose it: on validation speakers,
else by speaker-grouped CV), with the same cached functionals, and prints per fold the UA of each, their
paired difference with a bootstrap 95 % CI and Wilcoxon p, and the fit seconds of each (the exact model's cost
grows with the square of the training rows or worse, the approximation's linearly).

    python benchmarks/reference_agreement.py --corpus emodb --data-root ../shared/data/emodb
    python benchmarks/reference_agreement.py --corpus synthetic
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emoaug import metrics  # noqa: E402
from emoaug.classifiers.classic import (  # noqa: E402
    RBF_EXACT, RBF_NYSTROEM, extract_functionals, fit_predict, fold_rows, settings_for)
from emoaug.datasets import load_corpus  # noqa: E402
from emoaug.features import default_cache_root  # noqa: E402
from emoaug.splits import make_splits  # noqa: E402
from emoaug.stats import bootstrap_mean_ci, paired_p_value  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default="synthetic")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--labels", default="6class")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--reference", default="compare", choices=("compare", "egemaps"))
    parser.add_argument("--val-speakers", type=int, default=0,
                        help="validation speakers per fold (0, as the quick protocol: C by speaker-grouped CV)")
    args = parser.parse_args()

    scan = load_corpus(args.corpus, args.data_root, labels=args.labels)
    base = settings_for(args.reference)
    functionals = extract_functionals(scan.items, base.feature_set, cache_root=default_cache_root(), jobs=2)
    items = scan.items[scan.items["item_id"].isin(list(functionals))]
    folds = make_splits(items, "kfold", n_folds=args.folds, seed=0, val_speakers=args.val_speakers)
    models = {RBF_EXACT: replace(base, exact_max_train_rows=10**9), RBF_NYSTROEM: replace(base, exact_max_train_rows=0)}
    ua = {name: [] for name in models}
    seconds = {name: [] for name in models}
    print(f"{args.corpus}: {len(items)} items, {items['speaker'].nunique()} speakers, {len(folds)} folds; "
          f"{base.feature_set}; exact: RBF SVC, approximate: {base.nystroem_components} Nystroem components + "
          "LinearSVC")
    print("fold | train rows | UA exact % | UA approx % | approx - exact pp | fit s exact | fit s approx")
    print("--- | --- | --- | --- | --- | --- | ---")
    for fold in folds:
        rows = fold_rows(fold, items, functionals)
        for name, settings in models.items():
            start = time.perf_counter()
            predicted, chosen = fit_predict(rows["train"], rows["val"], rows["test"][0], scan.labels, settings,
                                            groups=rows["train_speakers"])
            seconds[name].append(time.perf_counter() - start)
            assert chosen["model"] == name
            ua[name].append(metrics.classification_metrics(rows["test"][1], predicted, scan.labels)["ua"])
        print(f"{fold.index} | {len(rows['train'][1])} | {100 * ua[RBF_EXACT][-1]:.1f} | "
              f"{100 * ua[RBF_NYSTROEM][-1]:.1f} | {100 * (ua[RBF_NYSTROEM][-1] - ua[RBF_EXACT][-1]):+.1f} | "
              f"{seconds[RBF_EXACT][-1]:.1f} | {seconds[RBF_NYSTROEM][-1]:.1f}")
    diff = 100 * (np.array(ua[RBF_NYSTROEM]) - np.array(ua[RBF_EXACT]))
    low, high = bootstrap_mean_ci(diff)
    print(f"\nUA exact {100 * np.mean(ua[RBF_EXACT]):.1f} ± {100 * np.std(ua[RBF_EXACT]):.1f} %, approximate "
          f"{100 * np.mean(ua[RBF_NYSTROEM]):.1f} ± {100 * np.std(ua[RBF_NYSTROEM]):.1f} % (fold mean ± std); "
          f"approximate - exact {diff.mean():+.1f} pp [{low:+.1f}, {high:+.1f}], Wilcoxon p "
          f"{paired_p_value(diff):.2f}; fit seconds per fold {np.mean(seconds[RBF_EXACT]):.1f} exact vs "
          f"{np.mean(seconds[RBF_NYSTROEM]):.1f} approximate")


if __name__ == "__main__":
    main()
