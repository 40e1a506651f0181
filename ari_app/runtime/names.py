"""Names fairline shares with Asterisk's dialplan (dialplan/extensions.conf) and with its own earlier runs."""

from __future__ import annotations

DIAL_CONTEXT = "fairline-dial"  # dialplan/extensions.conf: Dial() of what the extension names, then back to fairline
SHED_CONTEXT, SHED_LABEL = "from-carrier", "shed"  # dialplan/extensions.conf: the fallback, without its warning
# The share of new calls, in percent, the dialplan lets into the app; the others take the fallback
# without costing fairline anything (ari_app/core/admission.py, decision 0016).
ADMIT_VARIABLE = "FAIRLINE_ADMIT"
RECORDER_SUFFIX = "-recorder"  # the snoop channel that records call X is X-recorder
RECORDING_VARIABLE = "FAIRLINE_RECORDING"  # on a call's recorder channel: "mode|evidence", for adoption


def bridge_id(call_id: str) -> str:
    """The bridge fairline makes for a queued call and its agent (found again by adoption)."""
    return f"{call_id}-bridge"
