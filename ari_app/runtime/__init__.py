"""The running ARI application (moving into parts: for now all of it is in app.py)."""

from ari_app.runtime.app import (LATENCY_WEIGHT, RECORDER_SUFFIX, App, RecordingDirs, UnsupportedAsterisk,
                                 asterisk_major, backoff_delays)

__all__ = ["LATENCY_WEIGHT", "RECORDER_SUFFIX", "App", "RecordingDirs", "UnsupportedAsterisk", "asterisk_major",
           "backoff_delays"]
