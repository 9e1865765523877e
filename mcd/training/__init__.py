"""Training: the loop (`mcd train`), recipes, the EMA, the expert refit and calibration, `mcd reproduce`, model cards."""
