"""The real-time phase: a simulated live replay that scores, personalizes and explains."""
