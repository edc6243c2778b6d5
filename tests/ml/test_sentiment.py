import pickle

import numpy as np
import pandas as pd
import pytest

from data_platform.ml import sentiment as se

POS = ["great", "excellent", "love", "perfect", "works well", "highly recommend", "fantastic"]
NEG = ["terrible", "broke", "waste of money", "awful", "disappointed", "returned it", "poor"]
NOUNS = ["battery", "screen", "case", "charger", "headset", "blender", "lamp"]
FILLER = ["the", "this", "my", "really", "it", "was", "so", "and", "after a week", "honestly"]


def make_reviews(n=400, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = int(rng.random() < 0.6)
        words = list(rng.choice(FILLER, 4)) + [rng.choice(NOUNS)]
        words.append(rng.choice(POS if label else NEG))
        if rng.random() < 0.15:  # a contrasting word makes some reviews harder
            words.append(rng.choice(NEG if label else POS))
        rng.shuffle(words)
        # Label noise caps achievable accuracy, so the model must beat a real baseline, not 100%.
        shown = label if rng.random() > noise else 1 - label
        rows.append(
            {
                "review_id": f"r{i}",
                "product_id": f"p{i % 7}",
                "text": " ".join(words),
                "label": shown,
            }
        )
    return pd.DataFrame(rows)


FAST = se.SentimentConfig(folds=5, char_ngrams=False)


def test_beats_majority_class_with_calibrated_probabilities():
    model, m = se.train_and_evaluate(make_reviews(), FAST)
    assert m["accuracy"] > m["accuracy_majority"] + 0.12
    assert m["roc_auc"] > 0.8
    assert m["f1"] > 0.8
    assert m["brier"] < 0.2
    assert all(isinstance(v, float) for v in m.values())
    p = model.predict_proba(["excellent screen really love it", "terrible charger broke"])
    assert p.shape == (2, 2)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert p[0, 1] > 0.7 > 0.3 > p[1, 1]


def test_score_reviews_and_product_sentiment():
    train = make_reviews(seed=1)
    model, _ = se.train_and_evaluate(train, FAST)
    fresh = make_reviews(n=70, seed=2).drop(columns=["label"])
    fresh.loc[3, "text"] = None
    scored = pickle.loads(pickle.dumps(model)).score_reviews(fresh)
    assert list(scored.columns) == ["review_id", "product_id", "p_positive", "predicted_label"]
    assert len(scored) == len(fresh)
    assert scored["p_positive"].isna().tolist() == [i == 3 for i in range(70)]
    per_product = se.product_sentiment(scored)
    assert list(per_product.columns) == [
        "product_id",
        "n_reviews",
        "mean_p_positive",
        "share_positive",
    ]
    assert per_product["n_reviews"].sum() == 69
    assert per_product["mean_p_positive"].between(0, 1).all()


def test_char_ngrams_and_nb_scaling_run_and_bad_input_is_refused():
    _, m = se.train_and_evaluate(make_reviews(n=200, seed=3), se.SentimentConfig(folds=3))
    assert m["accuracy"] > m["accuracy_majority"] + 0.1
    with pytest.raises(ValueError, match="missing column"):
        se.train_and_evaluate(make_reviews().drop(columns=["label"]))
    one_class = make_reviews().assign(label=1)
    with pytest.raises(ValueError, match="each class"):
        se.train_and_evaluate(one_class)


def test_uci_labelled_sentences(real_data_dir):
    from data_platform.bench.models import load_reviews

    data = load_reviews("labelled_text", str(real_data_dir / "uci_sentiment"))
    assert len(data) == 3000
    # A cheap configuration; the full 10-fold target figure lives in docs/models.md.
    _, m = se.train_and_evaluate(data, se.SentimentConfig(folds=3, char_ngrams=False))
    assert m["accuracy"] > 0.8
