"""The power of the calibration test: how often a real edge of a given size is kept.

A direction agent keeps its calibrated output only when its log-loss gain over the class
prior is credible (:func:`ai_trade_bot.modeling.calibration.fit_calibration`); otherwise
it outputs the prior. This measures, for edges of several sizes, the share of folds that
keep the edge, at the calibration tails a default run has: five walk-forward folds of the
bundled S&P 500 daily (5,031 candles) give tails of 114, 149, 183, 218 and 252 rows, and
each fold after the first also has the out-of-fold rows of the folds before it
(``evidence``: 460 rows a fold).

The planted model: its probabilities lean toward a predicted class; the label is that
class with probability ``e`` and otherwise drawn from the prior, so accuracy rises with
``e`` (the table shows it). The probabilities are overconfident, as a network's are, so
the calibration has to temper them. Each edge size is repeated over many seeds.

Last line: ``smallest edge kept in >= 80% of folds: accuracy A (prior P)``.
"""

from __future__ import annotations

import argparse

import numpy as np

from ai_trade_bot.modeling.calibration import fit_calibration

PRIOR = np.array([0.33, 0.31, 0.36])
TAILS = (114, 149, 183, 218, 252)  # the default S&P run's calibration tails, fold by fold
FINAL_TAIL = 288  # the deployment model's (fit on every pre-test row)
OOF_BLOCK = 460  # out-of-fold rows each fold adds to the evidence of the next ones


def planted(n: int, edge: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Raw probabilities and labels with an edge of strength ``edge`` (0: none)."""
    predicted = rng.choice(3, size=n, p=PRIOR)
    logits = rng.normal(0.0, 1.0, size=(n, 3))
    logits[np.arange(n), predicted] += 2.0  # overconfident toward its pick
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    hit = rng.random(n) < edge
    labels = np.where(hit, predicted, rng.choice(3, size=n, p=PRIOR))
    return probs, labels


def kept_share(edge: float, repeats: int, seed: int, with_evidence: bool) -> dict[str, object]:
    """Per fold, the share of repeats whose calibration kept the edge (and the deployment
    model's), with the accuracy and calibrated log-loss gain of the planted model."""
    rng = np.random.default_rng(seed)
    kept = np.zeros(len(TAILS) + 1)
    for _ in range(repeats):
        evidence_probs, evidence_labels = [], []
        for k, tail in enumerate((*TAILS, FINAL_TAIL)):
            probs, labels = planted(tail, edge, rng)
            evidence = None
            if with_evidence and evidence_probs:
                evidence = (np.concatenate(evidence_probs), np.concatenate(evidence_labels))
            kept[k] += not fit_calibration(probs, labels, PRIOR, evidence=evidence).collapsed
            oof_probs, oof_labels = planted(OOF_BLOCK, edge, rng)
            evidence_probs.append(oof_probs)
            evidence_labels.append(oof_labels)
    probs, labels = planted(20_000, edge, rng)
    best = fit_calibration(probs, labels, PRIOR, min_edge_z=0.0)
    return {
        "folds": kept[:-1] / repeats,
        "final": kept[-1] / repeats,
        "accuracy": float((probs.argmax(axis=1) == labels).mean()),
        "gain": best.val_log_loss_prior - best.val_log_loss,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    edges = (0.0, 0.04, 0.08, 0.12, 0.16, 0.20, 0.24, 0.28)
    prior_accuracy = float(PRIOR.max())
    print(f"prior {PRIOR.tolist()} (its accuracy {prior_accuracy:.2f}); calibration tails "
          f"{TAILS} rows, the deployment model's {FINAL_TAIL}; {OOF_BLOCK} out-of-fold rows "
          f"a fold; {args.repeats} repeats")  # fmt: skip
    print("edge  accuracy  log-loss gain  | kept, tail only: folds mean, final "
          "| kept, with earlier out-of-fold rows: per fold, mean, final")  # fmt: skip
    smallest = None
    for edge in edges:
        alone = kept_share(edge, args.repeats, args.seed, with_evidence=False)
        pooled = kept_share(edge, args.repeats, args.seed, with_evidence=True)
        folds = " ".join(f"{v:.2f}" for v in pooled["folds"])
        print(
            f"{edge:4.2f}  {pooled['accuracy']:8.3f}  {pooled['gain']:13.4f}  | "
            f"{alone['folds'].mean():.2f}, {alone['final']:.2f} | {folds}, "
            f"{pooled['folds'].mean():.2f}, {pooled['final']:.2f}"
        )
        if smallest is None and edge > 0 and pooled["folds"].mean() >= 0.8:
            smallest = pooled["accuracy"]
    found = f"accuracy {smallest:.3f}" if smallest is not None else "none of those tried"
    print(f"smallest edge kept in >= 80% of folds: {found} (prior {prior_accuracy:.2f})")


if __name__ == "__main__":
    main()
