"""One trial of examples/optuna, run as a toolship task in localhost/toolship-science.

    python3 train.py --alpha 0.01 --gamma 0.5 --out /work/out/score.json

Fits an RBF kernel ridge regression (scikit-learn's KernelRidge) to scikit-learn's
diabetes data (442 patients, 10 measurements, a disease-progression score; bundled with
scikit-learn, so the task needs no network) with the given regularisation ``alpha``
and kernel width ``gamma``, and scores it by 3-fold cross-validated R² (1 is a perfect
prediction, 0 no better than the mean, below 0 worse).  The folds are the same in
every trial, so a score depends on the parameters alone.  Writes
``{"score": R², "alpha": ..., "gamma": ..., "seconds": ...}`` to --out and prints it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from sklearn.datasets import load_diabetes
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import KFold, cross_val_score


def score(alpha: float, gamma: float) -> float:
    """The mean R² of the model over three fixed folds."""
    x, y = load_diabetes(return_X_y=True)
    model = KernelRidge(kernel="rbf", alpha=alpha, gamma=gamma)
    folds = KFold(n_splits=3, shuffle=True, random_state=0)
    return float(cross_val_score(model, x, y, cv=folds, scoring="r2").mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alpha", type=float, required=True, help="L2 regularisation")
    parser.add_argument("--gamma", type=float, required=True, help="RBF kernel coefficient")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON score goes")
    args = parser.parse_args()
    started = time.perf_counter()
    r2 = score(args.alpha, args.gamma)
    result = {
        "score": r2,
        "alpha": args.alpha,
        "gamma": args.gamma,
        "seconds": round(time.perf_counter() - started, 3),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
