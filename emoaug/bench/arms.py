"""What a prediction row measures: its ``arm`` (one column of every result frame)."""

# All arms are tested on real items unless said otherwise.
MAIN = "main"  # none: real-only classifier; a generator: real + synthetic classifier; held-out real speakers
SYNTHETIC_ONLY = "synthetic_only"  # classifier trained on synthetic rows only (protocol augment)
CLARITY_TRUE = "clarity_true_label"  # judge on test utterances enhanced under their true emotion (Kim & Lee)
CLARITY_PREDICTED = "clarity_predicted_label"  # ... enhanced under the judge's own prediction (no label leak)
CLARITY_SAMPLED = "clarity_sampled"  # judge on class-conditional samples, as many per class as the test fold
CROSS = "cross"  # the main classifier on every item of --test-corpus
CROSS_SYNTHETIC_ONLY = "cross_synthetic_only"
ARMS = (MAIN, SYNTHETIC_ONLY, CLARITY_TRUE, CLARITY_PREDICTED, CLARITY_SAMPLED, CROSS, CROSS_SYNTHETIC_ONLY)
