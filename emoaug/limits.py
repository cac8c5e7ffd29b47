"""Bounds on what one audio file may be, checked before its samples are decoded (no imports: the CLI
shows the defaults without loading an audio library)."""

# Clip length bounds (the --min-duration and --max-duration defaults). The shortest utterances of real SER
# corpora last about half a second (IEMOCAP "Yeah."); 0.25 s still gives a log-mel 25 frames. The longest
# single utterances are about 35 s (IEMOCAP) to 41 s (MELD); 120 s leaves room for long monologues.
DEFAULT_MIN_DURATION = 0.25
DEFAULT_MAX_DURATION = 120.0
# Bounds checked before any sample is decoded, so that memory never depends on what a header claims:
# telephone speech is 8 kHz, studio masters 384 kHz; microphone arrays rarely exceed 32 channels.
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 64
# The most samples (frames x channels) one decode may produce: 256 MiB as float32, or about 23 min of
# 48 kHz stereo. Files larger on disk than these samples as float64 cannot be audio emoaug reads.
MAX_DECODED_SAMPLES = 1 << 26
MAX_FILE_BYTES = MAX_DECODED_SAMPLES * 8 + (1 << 20)
