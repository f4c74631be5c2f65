"""The real-time phase: a live replay of the period after the last cutoff that scores, personalizes and explains.

One job per module; only `stage` reads and writes files:

- `engine`: records, the stream processor (watermark, duplicates, dead letters) and the Source/Sink/Engine seams;
- `state`: the per-customer profile store, updated record by record with the batch feature definitions;
- `policy`: what a visit is shown; `loop`: the settings, the personalizer and the closed loop;
- `world`: the simulated shop after the cutoff, reacting to what it is shown; `context`: what the replay works on;
- `abtest`, `sensitivity`: the A/B test and its dependence on the assumed effect;
- `parity`, `drift`, `monitor`, `speed`, `explanations`, `retraining`: the checks and analyses of the report;
- `stage`: loading the inputs, retraining through a registry copy, the metrics and every output file.
"""
