"""Phase "recommend": product recommendations learned from the clickstream, evaluated out of time against
baselines and the simulator's true per-product taste."""
