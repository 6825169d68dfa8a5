"""The defaults the pipelines share, written once: their signatures and builders take them here."""

EXPERIMENT = "model-lifecycle"
MODEL_KIND = "HistGradientBoostingRegressor"
TEST_SIZE = 0.2
# How much worse than the Champion a new version may be; the promotion compares with it too.
TOLERANCE = 0.0
# auto: a passing version becomes Champion; manual: it awaits `model approve`.
PROMOTION = "auto"
ALIAS = "Champion"  # the alias promote sets, and the one inference serves by default
BATCH_SIZE = 131072
MAX_SAMPLES = 1000
SHARDS = 1
DRIFT_POLICY = "warn"
CHALLENGER = ""
CHALLENGER_TOLERANCE = 0.0
PERFORMANCE_TOLERANCE = 0.1
# Monitoring: how much worse than the holdout a realized metric may be, scored by period.
MONITORING_TOLERANCE = 0.1
PERIOD = "D"
MIN_ROWS = 30
MONITORING_POLICY = "warn"
# Tuning: the search, how many trials, how many at once (the compiled loop's limit), the metric.
SEARCH = "random"
TRIALS = 10
TRIAL_PARALLELISM = 2
# Empty: the task's primary metric (test_rmse for a regressor, test_f1_macro for a classifier).
TUNING_METRIC = ""
SEED = 0
