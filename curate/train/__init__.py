"""Training and evaluation: the FER model zoo, the one trainer (fit / predict_proba / embed), recipes."""
