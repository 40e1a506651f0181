"""After the events websocket was down: what a call missed, from what Asterisk shows now (issue 17).

Asterisk does not keep an application's events while its websocket is down, nor replay them: a
call that is still there may have done what its flow waits for meanwhile, and would wait in
silence for good. On each reconnect, every call fairline holds is looked at in Asterisk
(runtime/resync.py) and `missed` turns what is seen into the events its flow waited for, fed as
if they had come. It is pure: what was seen in, events out.

What a call can miss, by the phase it is in:
- in Dial() (the dialplan's): Dial() returned, the channel is back in the app with
  ("dialed", DIALSTATUS, DID): the DialReturned;
- before that, handed over to Dial(): the StasisEnd of the hand-over;
- a notice, a consent prompt, a queue position or an announcement playing: its end;
- bridged with a queue agent: the agent's hang-up (the queues hear of it: runtime/resync.py).
A call whose channel is gone ended unseen: its end comes from Asterisk's own CDR, else it is the
time the websocket went down, marked estimated (rating/core/cdr.py: end_estimated).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from ari_app.core import events
from ari_app.core.flow import Announcing, Call, Connected, Consent, Dialing, Notice, Queued

DIALED = "dialed"  # the first argument of Stasis() back from fairline-dial's Dial() (dialplan/extensions.conf)


@dataclasses.dataclass(frozen=True, slots=True)
class Seen:
    """What Asterisk shows, after a reconnect, of a call whose channel is still there."""

    in_app: bool  # in fairline's Stasis() application
    app_args: tuple[str, ...]  # Stasis()'s arguments after the application's name
    answered: bool  # the channel is up
    playback_over: bool = False  # the playback the call waits for is gone (over or never started)


def awaited_playback(call: Call) -> str | None:
    """The playback whose end the call's flow waits for, if any."""
    state = call.state
    return state.playing if isinstance(state, (Notice, Consent, Queued, Announcing)) else None


def agent_channel(call: Call) -> str | None:
    """The queue agent's channel the call is bridged with, if any."""
    return call.state.agent_channel if isinstance(call.state, Connected) else None


def stasis_args(app_data: str, app: str) -> tuple[str, ...] | None:
    """The arguments of `Stasis(app,...)` from a channel's app_data, or None when it runs another app."""
    name, *args = app_data.split(",")
    return tuple(args) if name.strip() == app else None


def missed(call: Call, seen: Seen, at: datetime) -> list[events.CallEvent]:
    """The events `call` missed, given what Asterisk shows of it now."""
    state = call.state
    if isinstance(state, Dialing):
        if seen.in_app and seen.app_args[:1] == (DIALED,):
            status, did = (list(seen.app_args[1:3]) + ["", ""])[:2]
            returned = events.DialReturned(call.call_id, at, status, did or call.data.did, call.caller,
                                           call.data.started_at, seen.answered)
            # Handed over and back while fairline was away: the hand-over's StasisEnd first.
            return [events.CallLeft(call.call_id, at), returned] if not state.in_dialplan else [returned]
        if not seen.in_app and not state.in_dialplan:
            return [events.CallLeft(call.call_id, at)]
        return []
    playing = awaited_playback(call)
    if playing is not None and seen.playback_over:
        return [events.PlaybackDone(call.call_id, at, playing, failed=False)]
    return []
