"""Taking over the calls a previous fairline left in Asterisk (decision 0015).

Reads what Asterisk shows through ari_app/ari/event_parser.py (never raw JSON) and decides
where each call is: in Dial() ("dialing"), in fairline's bridge with a queue agent
("bridged"), or answered and in the app ("held"); a call never answered starts over.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

import structlog

from ari_app.core import flow
from ari_app.core import consent
from ari_app.ari import event_parser
from ari_app.ari.client import AriClient
from ari_app.ari.event_parser import BadChannel, Channel
from ari_app.core.events import CallStarted
from ari_app.errors import AriError, ChannelGone
from ari_app.queue_runtime import AGENT_LEG_MARK, Queues
from ari_app.runtime.executor import forgiving
from ari_app.runtime.names import DIAL_CONTEXT, RECORDER_SUFFIX, RECORDING_VARIABLE, bridge_id
from plumbing.clock import utc_now


class Adoption:
    """Finds the channels an earlier fairline left and feeds each call's flow what is known of it."""

    def __init__(self, ari: AriClient, log: structlog.typing.FilteringBoundLogger, *, queues: Queues,
                 known: Callable[[str], bool], feed: Callable[[CallStarted | flow.Adopted], None]) -> None:
        self.ari = ari
        self.log = log
        self.queues = queues
        self.known = known  # a call this fairline already handles
        self.feed = feed

    async def adopt_channels(self) -> None:
        """Take over the calls a previous fairline left in Asterisk.

        Runs once the websocket is up and before its first event is handled, so no event of an
        adopted call is missed. A channel fairline already knows is left alone.
        """
        try:
            channels = event_parser.parse_channels(await self.ari.request("GET", "/channels"))
            in_bridges = event_parser.parse_bridges(await self.ari.request("GET", "/bridges"))
        except AriError as exc:
            self.log.warning("adoption.skipped", error=str(exc))
            return
        for channel in channels:
            if isinstance(channel, BadChannel):
                self.log.warning("adoption.failed", call_id=channel.channel_id, error=channel.error)
                continue
            try:
                await self._adopt(channel, in_bridges)
            except (AriError, ValueError) as exc:
                self.log.warning("adoption.failed", call_id=channel.channel_id, error=str(exc))

    async def _adopt(self, channel: Channel, in_bridges: dict[str, list[str]]) -> None:
        cid = channel.channel_id
        in_app = channel.app_name == "Stasis" and channel.app_data.split(",")[0] == self.ari.app
        # In fairline-dial's Dial(); a channel back in Stasis from there still shows that context.
        in_dial = channel.context == DIAL_CONTEXT and channel.app_name == "Dial"
        if self.known(cid) or self.queues.is_leg(cid) or not (in_app or in_dial):
            return
        if cid.endswith(RECORDER_SUFFIX):
            return  # ends with the call it records
        if AGENT_LEG_MARK in cid:
            if not any(cid in members for members in in_bridges.values()):
                self.log.warning("adoption.agent_leg_released", channel_id=cid)  # rung for a caller now lost
                await forgiving(self.ari, "DELETE", f"/channels/{cid}")
            return
        now = utc_now()
        from_carrier = channel.context != DIAL_CONTEXT  # still where it came in: the exten is the DID
        did = channel.exten if from_carrier else await self._variable(cid, "FAIRLINE_DID")
        answered = await self._answer_time(cid) if channel.state == "Up" else None
        bridge = in_bridges.get(bridge_id(cid), [])
        agent = next((c for c in bridge if c != cid), None)
        where = flow.Found.DIALING if in_dial else flow.Found.BRIDGED if agent is not None else flow.Found.HELD
        log = self.log.bind(call_id=cid)
        if where is flow.Found.HELD and answered is None:  # never answered: route it from the start
            log.warning("call.adopted_after_restart", where="new", did=did)
            self.feed(CallStarted(cid, now, did, channel.caller, channel.created_at, channel.state))
            return
        if in_dial:
            await self.ari.request("POST", f"/applications/{self.ari.app}/subscription",
                                   {"eventSource": f"channel:{cid}"})
        if agent is not None:
            self.queues.adopt_connected(agent, cid)
        recording = None
        if await self._recorder_exists(cid):
            recording = await self._recording_terms(cid)
        log.warning("call.adopted_after_restart", where=where, did=did, answered=answered is not None,
                    recorded=recording is not None)
        self.feed(flow.Adopted(cid, now, did, channel.caller, channel.created_at, answered, where, agent, recording))

    async def _variable(self, channel_id: str, name: str) -> str:
        answer = await self.ari.request("GET", f"/channels/{channel_id}/variable", {"variable": name})
        return event_parser.parse_variable(answer)

    async def _answer_time(self, channel_id: str) -> datetime | None:
        """When Asterisk answered the channel (its CDR's answer time), so an adopted call is billed exactly."""
        raw = await self._variable(channel_id, "CDR(answer,u)")
        try:
            stamp = float(raw)
        except ValueError:
            return None
        return datetime.fromtimestamp(stamp, timezone.utc) if stamp > 0 else None

    async def _recorder_exists(self, call_id: str) -> bool:
        try:
            await self.ari.request("GET", f"/channels/{call_id}{RECORDER_SUFFIX}")
        except ChannelGone:
            return False
        return True

    async def _recording_terms(self, call_id: str) -> tuple[consent.Mode, str] | None:
        """The mode and evidence a recording started under, kept on the channel for a restarted fairline."""
        mode, _, evidence = (await self._variable(f"{call_id}{RECORDER_SUFFIX}", RECORDING_VARIABLE)).partition("|")
        try:
            return consent.Mode(mode), evidence
        except ValueError:
            return None

