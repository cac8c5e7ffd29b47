"""emoaug: an open benchmark harness for generative data augmentation in speech emotion recognition."""

__version__ = "0.1.0"
