"""Models, pure: each module has `train_and_evaluate(data, config=None) -> (model, metrics)`.

`recommender` (SVD/KNNBaseline/Bayesian MF blend + EASE ranking), `segmentation` (KMeans on RFM),
`sentiment` (TF-IDF + NB-weighted logistic regression), `experiments` (A/B z-test, power, SRM);
`features` builds their inputs.
"""
