"""The model phase: purchase likelihood, validated out of time, explained and registered.

split (the out-of-time split and the model's columns), candidates (settings, pipelines, grid search, fit and
predict), selection (importance and pruning), evaluate (metrics, curves, intervals, calibration), attribution
(the gap to the oracle), promotion (register and promote by the rule), registry, champion, explain (LIME and
exact contributions), narrative (the report's computed paragraphs); stage.py does all the reading and writing.
"""
