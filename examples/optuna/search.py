"""Bayesian hyper-parameter search: Optuna's ask-and-tell loop, each trial a toolship task.

    python search.py --to s3://lab/optuna/ --trials 12 --parallel 3 --seed 3 --out .

Each trial runs train.py in localhost/toolship-science (scikit-learn inside): an RBF
kernel ridge regression on scikit-learn's diabetes data with the trial's ``alpha`` and
``gamma``, scored by 3-fold cross-validated R².  The task writes its score to
/work/out/score.json, which toolship delivers to TO/trial-NNN/score.json.

The loop keeps --parallel trials in the server at once: whenever one of their tasks
ends it reads that score back from the bucket, tells Optuna, and asks for the next
trial, until --trials have ended.  The sampler is Optuna's TPE: the first --parallel
trials, asked before any score exists, are drawn at random; every later one where the
scores so far say the best are, and with ``constant_liar`` a trial still running
counts as a poor one, so trials in flight together are not asked for the same point.

It prints one line per trial as it ends, then all trials in order and the best; it
saves the optimisation history (history.png) and the best trial (best.json) in --out.

The server is $TOOLSHIP_SERVER (with $TOOLSHIP_TOKEN), else the local embedded one,
as for the CLI.  An S3 endpoint other than AWS comes from --endpoint-url or
$AWS_ENDPOINT_URL (for reading the scores; the server has its own setting).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import fsspec
import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import TrialState

from toolship import Client, TaskState

TRAIN = Path(__file__).resolve().with_name("train.py")
IMAGE = "localhost/toolship-science"
# Wide on purpose, as a first search is: most of this square predicts no better than the
# mean (too little regularisation with too narrow a kernel overfits; too much, or too
# wide a kernel, predicts the mean), and the good region is a narrow ridge.
SPACE: dict[str, BaseDistribution] = {
    "alpha": FloatDistribution(1e-6, 1e2, log=True),
    "gamma": FloatDistribution(1e-4, 1e4, log=True),
}


@dataclass
class Running:
    """A trial in flight: Optuna's trial, its task and where its score will be."""

    trial: optuna.Trial
    task_id: str
    url: str


def submit(client: Client, trial: optuna.Trial, to: str, image: str, study: str) -> Running:
    """Start one trial as a task; its score goes to TO/trial-NNN/score.json."""
    url = f"{to}trial-{trial.number:03d}/score.json"
    alpha, gamma = trial.params["alpha"], trial.params["gamma"]
    task = client.submit(
        image,
        ["python3", "/work/bin/train.py", "--alpha", repr(alpha), "--gamma", repr(gamma),
         "--out", "/work/out/score.json"],
        content=[f"/work/bin/train.py=@{TRAIN}"],
        outputs=[f"/work/out/score.json={url}"],
        env={"OPENBLAS_NUM_THREADS": "1"},  # one core per task: BLAS with one thread
        name=f"{study}-trial-{trial.number}",
        tags={"optuna.study": study, "optuna.trial": str(trial.number)},
    )  # fmt: skip
    trial.set_user_attr("task", task.id)
    return Running(trial, task.id, url)


def read_score(url: str, endpoint: str | None) -> float:
    options: dict[str, Any] = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}
    with fsspec.open(url, "rt", **options) as f:
        return float(json.load(f)["score"])


def search(args: argparse.Namespace) -> optuna.Study:
    """The ask-and-tell loop: at most --parallel tasks at once, --trials in all."""
    # TPE models from the first score on: the trials asked before it (--parallel of
    # them) are its random start.
    sampler = optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=1, constant_liar=True)
    study = optuna.create_study(study_name=args.study, direction="maximize", sampler=sampler)
    to = args.to if args.to.endswith("/") else args.to + "/"
    client = Client()
    running: dict[Future[TaskState], Running] = {}
    asked = 0
    with ThreadPoolExecutor(max_workers=args.parallel) as pool:
        while asked < args.trials or running:
            while asked < args.trials and len(running) < args.parallel:
                scored = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                trial = study.ask(SPACE)
                trial.set_user_attr("sampler", "TPE" if scored else "random")
                run = submit(client, trial, to, args.image, args.study)
                running[pool.submit(client.wait, run.task_id)] = run
                asked += 1
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: running[f].trial.number):
                run = running.pop(future)
                finish(client, study, run, future.result(), args.endpoint_url)
    return study


def finish(
    client: Client, study: optuna.Study, run: Running, state: TaskState, endpoint: str | None
) -> None:
    """Tell Optuna how the trial ended: its score, or that it failed (and why)."""
    number, params = run.trial.number, format_params(run.trial.params)
    if state != TaskState.COMPLETE:
        study.tell(run.trial, state=TrialState.FAIL)
        stderr = client.task(run.task_id).logs("stderr").strip().splitlines()[-5:]
        print(f"trial {number:3d}  {params}  task {run.task_id} {state}", *stderr, sep="\n    ")
        return
    score = read_score(run.url, endpoint)
    study.tell(run.trial, score)
    best = study.best_value
    print(f"trial {number:3d}  {params}  R2 {score:8.4f}  best {best:.4f}  task {run.task_id}")


def format_params(params: dict[str, Any]) -> str:
    return "  ".join(f"{name} {params[name]:9.3g}" for name in SPACE)


def report(study: optuna.Study, out: Path) -> None:
    """Every trial in order, the best, history.png and best.json."""
    ended = [t for t in study.trials if t.state == TrialState.COMPLETE]
    print(f"\n{'trial':>5}  {'alpha':>9}  {'gamma':>9}  {'R2':>8}  sampler")
    for t in study.trials:
        value = f"{t.value:8.4f}" if t.value is not None else f"{t.state.name:>8}"
        how = t.user_attrs["sampler"]
        print(f"{t.number:5d}  {t.params['alpha']:9.3g}  {t.params['gamma']:9.3g}  {value}  {how}")
    if not ended:
        sys.exit("no trial ended with a score: see the tasks' stderr above")
    first = [t.value for t in ended if t.user_attrs["sampler"] == "random" and t.value is not None]
    best = study.best_trial
    print(
        f"best: trial {best.number}, R2 {best.value:.4f} "
        f"(alpha {best.params['alpha']:.3g}, gamma {best.params['gamma']:.3g}); "
        "the random start's best: " + (f"{max(first):.4f}" if first else "none ended")
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "best.json").write_text(
        json.dumps(
            {"trial": best.number, "score": best.value, "params": best.params,
             "trials": len(study.trials), "task": best.user_attrs["task"]},
            indent=2,
        ) + "\n"
    )  # fmt: skip
    plot(study, out / "history.png")


def plot(study: optuna.Study, png: Path) -> None:
    """Each trial's R² and the best so far, the random start apart from TPE's trials.

    Scores far below zero (a model much worse than predicting the mean) are drawn at
    the bottom edge, so that the good region keeps its scale.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ended = [t for t in study.trials if t.value is not None]
    floor = -0.25
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for random, label, style in ((True, "random start", "o"), (False, "TPE", "s")):
        group = [t for t in ended if (t.user_attrs["sampler"] == "random") == random]
        ax.scatter(
            [t.number for t in group], [max(t.value or 0.0, floor) for t in group],
            marker=style, label=label, zorder=3,
        )  # fmt: skip
    best, line = float("-inf"), []
    for t in ended:
        best = max(best, t.value or best)
        line.append((t.number, best))
    ax.step([n for n, _ in line], [max(b, floor) for _, b in line], where="post",
            color="black", linewidth=1, label="best so far")  # fmt: skip
    ax.set_ylim(floor - 0.03, max(b for _, b in line) + 0.05)
    ax.set_xlabel("trial")
    ax.set_ylabel("cross-validated R² (clipped at -0.25)")
    ax.set_title(f"Optuna TPE through toolship: {study.study_name}")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=3, frameon=False)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--to", required=True, help="where the scores go: s3://BUCKET/PREFIX/")
    parser.add_argument("--trials", type=int, default=12, help="trials in all (12)")
    parser.add_argument("--parallel", type=int, default=3, help="trials at once (3)")
    parser.add_argument("--seed", type=int, default=3, help="the sampler's seed (3)")
    parser.add_argument("--image", default=IMAGE, help=f"the trials' image ({IMAGE})")
    parser.add_argument("--study", default="diabetes-krr", help="study name, tag of its tasks")
    parser.add_argument("--out", type=Path, default=Path(), help="for history.png, best.json")
    parser.add_argument(
        "--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"),
        help="S3 endpoint the scores are read from ($AWS_ENDPOINT_URL)",
    )  # fmt: skip
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial is ours
    report(search(args), args.out)


if __name__ == "__main__":
    main()
