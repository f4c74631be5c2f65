"""The data phase: simulate a shop (or take a retailer's files), validate it against the data contract, and
prepare point-in-time customer features.

`stage` does all the phase's reading and writing (the simulate, validate and prep stages); the rest are
pure functions: `simulate/` (the simulator), `validate/` (the contract's checks and quarantine), `faults`
(the fault catalog both demonstrations break data with), `features` (the feature definitions), `leakage`
(the leakage rule, attacked), `snapshots` (features and labels per cutoff), `transform` (imputation and
scaling), `prep_metrics` (what the prep stage records), `explore` (descriptive views and their facts).
"""
