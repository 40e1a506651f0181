"""The routing model: which numbers fairline serves, whom their calls ring, and how calls are recorded.

Frozen values, built by a loader (ari_app.config.yaml_loader reads the PBX admin's YAML file) or by a
test. Pure: no file is read here, not even the jurisdiction table (it is passed in). The rules that are
about the model rather than about YAML (what a target may be, whether a number's type fits it) are here
too, so any source of configuration gets the same checks.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from datetime import date, datetime
from types import MappingProxyType
from typing import Final, Mapping
from zoneinfo import ZoneInfo

from ari_app.core import consent
from ari_app.core.blocking import BUSY, Blocklist, Refusal
from ari_app.core.closures import MAX_CLOSED_DATES, DateRange, Holidays
from ari_app.core.limits import CallLimits, NumberLimits, number_limits
from ari_app.core.queueing import QueueSpec
from ari_app.core.voicemail import Box
from rating.core import numbering
from rating.core.numbering import PhoneNumberType
from rating.core.tariff import DEFAULT_RATES, NumberType, RateTable

DEFAULT_RING_SECONDS = 20
MAX_RING_SECONDS = 120
NOBODY_AVAILABLE = "vm-nobodyavail"  # what a caller hears when no target answered, unless configured
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
MINUTES_PER_DAY = 24 * 60


class Strategy(enum.StrEnum):
    """How a route rings its targets."""

    SIMULTANEOUS = "simultaneous"  # all at once; the first to answer wins
    SEQUENTIAL = "sequential"  # one after the other, each for its own ring time


class TargetKind(enum.StrEnum):
    """What kind of phone a target is, as billing reads it."""

    FIXED = "fixed"
    MOBILE = "mobile"


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """A landline or mobile phone a route rings."""

    e164: str
    kind: TargetKind
    ring_seconds: int
    confirm: bool | None = None  # must press 1 to take a call (decision 0031); None: as its kind's default


# How much longer than its ring time a phone that must confirm may take: it hears the prompt (about 9 s
# with the number read out) and has 5 s to press 1 (dialplan/extensions.conf, decision 0031).
CONFIRM_SECONDS = 30


@dataclasses.dataclass(frozen=True, slots=True)
class AnswerConfirmation:
    """Which answering phones must press 1 before a call is theirs (decision 0031).

    A mobile's own voicemail answers after some 20 seconds; without this it would take the call,
    end the route and be billed as answered. Landlines rarely have one, so they need not confirm.
    """

    mobiles: bool = True
    landlines: bool = False

    def applies(self, target: Target) -> bool:
        if target.confirm is not None:
            return target.confirm
        return self.mobiles if target.kind is TargetKind.MOBILE else self.landlines


@dataclasses.dataclass(frozen=True, slots=True)
class Announce:
    """Nobody answered: play this sound, then release."""

    sound: str


@dataclasses.dataclass(frozen=True, slots=True)
class ForwardTo:
    """Nobody answered: go on with the route of another of the same customer's numbers (E.164)."""

    number: str


@dataclasses.dataclass(frozen=True, slots=True)
class ToQueue:
    """Nobody answered: wait in the same customer's queue of this name (a key of `Config.queues`)."""

    name: str


@dataclasses.dataclass(frozen=True, slots=True)
class ToVoicemail:
    """Nobody answered: the caller leaves a message in the voicemail box of the number's (or queue's) customer."""


NoAnswer = Announce | ForwardTo | ToQueue | ToVoicemail


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """Whom a call rings, in what order, and what happens when nobody answers."""

    strategy: Strategy
    targets: tuple[Target, ...]
    no_answer: NoAnswer = Announce(NOBODY_AVAILABLE)

    def __post_init__(self) -> None:
        if not self.targets and not isinstance(self.no_answer, (ToQueue, ToVoicemail)):
            raise ValueError("a route rings at least one target, or sends its callers straight to a queue "
                             "or to voicemail")

    @property
    def queue_only(self) -> str | None:
        """The queue a route sends every caller straight to (`route: {queue: NAME}`), or None."""
        return self.no_answer.name if not self.targets and isinstance(self.no_answer, ToQueue) else None

    @property
    def voicemail_only(self) -> bool:
        """Whether the route takes every caller straight to voicemail (`route: {voicemail: true}`)."""
        return not self.targets and isinstance(self.no_answer, ToVoicemail)


@dataclasses.dataclass(frozen=True, slots=True)
class Window:
    """Open from `opens` up to (not including) `closes`, in minutes after local midnight; 1440 is 24:00."""

    opens: int
    closes: int

    def __str__(self) -> str:
        return f"{_clock(self.opens)}-{_clock(self.closes)}"


@dataclasses.dataclass(frozen=True, slots=True)
class OpeningHours:
    """When a number's daytime route is in force, on the wall clock of the number's own country."""

    zone: ZoneInfo
    week: tuple[tuple[Window, ...], ...]  # seven days, Monday first; a day without windows is closed

    def __post_init__(self) -> None:
        if len(self.week) != len(DAYS):
            raise ValueError("opening hours have one entry per day of the week, Monday first")

    def is_open(self, instant: datetime) -> bool:
        """Whether `instant` (aware) falls in a window on the local clock, whatever the DST offset that day."""
        if instant.utcoffset() is None:
            raise ValueError(f"expected an aware datetime, got {instant!r}")
        local = instant.astimezone(self.zone)
        # Windows are whole minutes, so comparing the minute is exact.
        minute = local.hour * 60 + local.minute
        return any(w.opens <= minute < w.closes for w in self.week[local.weekday()])


@dataclasses.dataclass(frozen=True, slots=True)
class Closures:
    """When a number is closed all day, and what callers get then.

    `route`: whom to ring on those days; `announcement`: what callers hear instead (answered, then
    released, like an announcement-only number). Neither: the number's outside-hours route.
    """

    zone: ZoneInfo  # the number's clock: what "today" is
    holidays: Holidays | None = None
    dates: tuple[DateRange, ...] = ()
    route: Route | None = None
    announcement: str | None = None

    def __post_init__(self) -> None:
        if self.holidays is None and not self.dates:
            raise ValueError("closures name public holidays, dates, or both")
        if self.route is not None and self.announcement is not None:
            raise ValueError("on closed days callers get a route or an announcement, not both")
        if len(self.dates) > MAX_CLOSED_DATES:
            raise ValueError(f"{len(self.dates)} closed dates or ranges; expected at most {MAX_CLOSED_DATES}")

    def local_day(self, instant: datetime) -> date:
        """The date on the number's clock at `instant` (aware)."""
        if instant.utcoffset() is None:
            raise ValueError(f"expected an aware datetime, got {instant!r}")
        return instant.astimezone(self.zone).date()

    def closed_on(self, day: date) -> bool:
        """Whether the local date `day` is a closed day: a listed date or a public holiday."""
        return any(day in r for r in self.dates) or (self.holidays is not None and day in self.holidays)

    def closed_at(self, instant: datetime) -> bool:
        """Whether `instant` (aware) falls on a closed day on the number's clock."""
        return self.closed_on(self.local_day(instant))


@dataclasses.dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    name: str
    recording: bool = False  # record the calls of its numbers (a number may say otherwise)
    max_calls: int | None = None  # calls at once to all its numbers; None: the configuration's default
    blocked: Blocklist | None = None  # callers refused on every one of its numbers (decision 0030)
    blocked_with: Refusal | None = None  # how; a number may say otherwise; None: busy
    voicemail: Box | None = None  # where its callers leave messages (issue 18); None: it has no voicemail


@dataclasses.dataclass(frozen=True, slots=True)
class Number:
    """One number fairline serves: it rings a route, or plays an announcement."""

    e164: str
    customer_id: str
    number_type: NumberType
    announcement: str | None = None  # an announcement-only number: the Asterisk sound a caller hears
    route: Route | None = None  # whom to ring (during opening hours, when there are any)
    hours: OpeningHours | None = None
    outside_hours: Route | None = None  # whom to ring when hours say closed
    international_forwarding: bool = False  # targets may be abroad (such calls are never fair-use eligible)
    recording: bool | None = None  # None: as its customer says
    max_calls: int | None = None  # calls at once to this number; None: the configuration's default
    closed: Closures | None = None  # whole days closed (public holidays, listed dates), with what callers get
    blocked: Blocklist | None = None  # callers refused, besides its customer's (decision 0030)
    blocked_with: Refusal | None = None  # how blocked callers are refused; None: as its customer says

    def __post_init__(self) -> None:
        if (self.route is None) == (self.announcement is None):
            raise ValueError(f"{self.e164}: a number has a route or an announcement, exactly one of them")
        if (self.hours is None) != (self.outside_hours is None):
            raise ValueError(f"{self.e164}: opening hours and the outside-hours route go together")
        if self.hours is not None and self.route is None:
            raise ValueError(f"{self.e164}: opening hours choose between two routes; an announcement has none")
        if self.closed is not None and self.hours is None:
            raise ValueError(f"{self.e164}: closed days are part of opening hours; a number without hours is never closed")

    def route_at(self, instant: datetime) -> Route | None:
        """The route in force at `instant` (aware), or None where callers hear an announcement.

        On a closed day (its local date), the closure's route, else the outside-hours route, all day.
        """
        if self.closed is not None and self.closed.closed_at(instant):
            return None if self.closed.announcement is not None else self.closed.route or self.outside_hours
        if self.hours is None or self.hours.is_open(instant):
            return self.route
        return self.outside_hours

    def announcement_at(self, instant: datetime) -> str | None:
        """What callers hear at `instant` where `route_at` gives no route: the closure's announcement on a
        closed day, else the number's own."""
        if self.closed is not None and self.closed.announcement is not None and self.closed.closed_at(instant):
            return self.closed.announcement
        return self.announcement


@dataclasses.dataclass(frozen=True, slots=True)
class Queue:
    """A customer's call queue: the core's spec, and where a caller goes when the wait cap is reached."""

    customer_id: str
    spec: QueueSpec
    overflow: Announce | ForwardTo | Target | ToVoicemail = Announce(NOBODY_AVAILABLE)  # a Target: ring that phone
    confirm: bool | None = None  # its agents must press 1 to take a caller; None: as their kind's default


DEFAULT_NOTICE = ("conf-now-recording",)  # Asterisk's core sounds have no better stand-in; record your own
DEFAULT_CONSENT_PROMPT = ("if-correct-press", "digits/1")  # "If this is correct, press" "one"
DEFAULT_CONSENT_SECONDS = 5

# The law of a model built without a jurisdiction table (a test's, say): nothing is recorded. The model reads
# no file; the loaders pass in the table shipped with fairline (ari_app.config.jurisdictions.shipped_law).
NO_LAW: Final = consent.Jurisdictions(MappingProxyType({}), consent.Rule(
    consent.Mode.FORBIDDEN, "no jurisdiction table given", None, "a model built without the law records nothing"))


@dataclasses.dataclass(frozen=True, slots=True)
class Recording:
    """How calls are recorded where a customer or number turned recording on (issue 6, decision 0014)."""

    law: consent.Jurisdictions = NO_LAW  # the loaders pass the shipped table in, with the overrides applied
    notice: tuple[str, ...] = DEFAULT_NOTICE  # sounds played before recording (notify and consent)
    consent_prompt: tuple[str, ...] = DEFAULT_CONSENT_PROMPT  # then, for consent: press 1 to agree
    consent_seconds: int = DEFAULT_CONSENT_SECONDS  # how long after the prompt a digit is awaited


@dataclasses.dataclass(frozen=True, slots=True)
class Config:
    customers: Mapping[str, Customer]  # by id
    numbers: Mapping[str, Number]  # by E.164
    queues: Mapping[str, Queue] = dataclasses.field(default_factory=lambda: MappingProxyType({}))  # by name
    rates: RateTable = DEFAULT_RATES
    text: str = ""  # the file as loaded (UTF-8, newlines untouched): configuration versions hash it
    recording: Recording = dataclasses.field(default_factory=Recording)
    limits: CallLimits = CallLimits()  # concurrent calls, applied by the dialplan (decision 0026)
    confirmation: AnswerConfirmation = AnswerConfirmation()

    def confirms(self, target: Target) -> bool:
        """Whether `target` must press 1 before a call is connected to it (decision 0031)."""
        return self.confirmation.applies(target)

    def agent_confirms(self, queue: str, agent: str) -> bool:
        """Whether queue `queue`'s agent `agent` (E.164) must press 1 before a caller is connected."""
        kind = target_kind(agent)
        found = self.queues.get(queue)
        return kind is not None and self.confirms(Target(agent, kind, 0, found.confirm if found else None))

    def limits_of(self, number: Number) -> NumberLimits:
        """The concurrent-call limits the dialplan holds `number`'s calls to."""
        customer = self.customers.get(number.customer_id)
        return number_limits(self.limits, number_max=number.max_calls, customer_id=number.customer_id,
                             customer_max=customer.max_calls if customer is not None else None)

    def refusal(self, number: Number, caller: str | None) -> Refusal | None:
        """How a call from `caller` to `number` is refused (decision 0030), or None when no list blocks it.

        The number's own `blocked_with` says how, else its customer's, else busy, whichever list holds the caller.
        """
        customer = self.customers.get(number.customer_id)
        lists = (number.blocked, customer.blocked if customer is not None else None)
        if not any(blocklist is not None and blocklist.refuses(caller) for blocklist in lists):
            return None
        return number.blocked_with or (customer.blocked_with if customer is not None else None) or BUSY

    def records(self, number: Number) -> bool:
        """Whether calls to `number` are to be recorded (where the law allows: decided per call)."""
        if number.recording is not None:
            return number.recording
        customer = self.customers.get(number.customer_id)
        return customer is not None and customer.recording

    @property
    def needs_us_states(self) -> bool:
        """Whether a call may need a US number's state: some number is recorded and the law tells states apart."""
        return (any(country.regions for country in self.recording.law.countries.values())
                and any(self.records(number) for number in self.numbers.values()))

    def number(self, did: str) -> Number | None:
        """The configured number for a dialled DID, or None when it is not in service."""
        number = self.numbers.get(did)  # the carrier's usual form, E.164 already: no parsing on every call
        if number is not None:
            return number
        e164 = numbering.to_e164(did)
        return self.numbers.get(e164) if e164 is not None else None


@functools.lru_cache(maxsize=16384)
def target_kind(e164: str) -> TargetKind | None:
    """What kind of phone `e164` is, as billing reads it (a queue agent's, say); None if neither kind."""
    phone = numbering.phone(e164)
    return TARGET_KINDS.get(phone.type) if phone is not None else None


# The target types a route may ring. FIXED_LINE_OR_MOBILE (countries such as the US,
# where the number does not tell) counts as mobile: the dearer of the two to reach.
TARGET_KINDS: Mapping[int, TargetKind] = MappingProxyType({
    PhoneNumberType.FIXED_LINE: TargetKind.FIXED,
    PhoneNumberType.MOBILE: TargetKind.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: TargetKind.MOBILE,
})

# Every other type, and why a route may not ring it. Premium-rate and the like pay
# their owner per minute: a route to one turns every inbound call into toll fraud.
REFUSED_TARGETS: Mapping[int, str] = MappingProxyType({
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number: refused to prevent toll fraud "
                                  "(every forwarded minute would pay its owner)",
    PhoneNumberType.SHARED_COST: "a shared-cost number: refused to prevent toll fraud "
                                 "(charged above a landline, part of it paid to its owner)",
    PhoneNumberType.PERSONAL_NUMBER: "a personal number: refused to prevent toll fraud "
                                     "(charged at premium rates, and it redirects to anywhere)",
    PhoneNumberType.UAN: "a universal access number: refused to prevent toll fraud "
                         "(charged at its own rates, possibly with a share to its owner)",
    PhoneNumberType.PAGER: "a pager number: refused, a pager cannot take a call",
    PhoneNumberType.VOICEMAIL: "a voicemail access number: refused, it is not a phone",
    PhoneNumberType.VOIP: "a nomadic VoIP number: refused, its cost and reach are not a landline's or a mobile's",
    PhoneNumberType.TOLL_FREE: "a toll-free number: refused, a service number is not a landline or mobile phone",
    PhoneNumberType.UNKNOWN: "of a type phonenumbers cannot tell: refused, what it costs to ring is unknown",
})


@dataclasses.dataclass(frozen=True, slots=True)
class Owner:
    """The number a route belongs to, as its targets are checked against it."""

    e164: str | None
    region: str | None
    international: bool


ANY_OWNER: Final = Owner(None, None, True)  # a queue's agents: checked for their kind; their country across numbers


def check_target(raw: str, ring_seconds: int, owner: Owner) -> Target:
    """The phone a route or queue may ring, written as `raw` ("+31612345678"); ValueError says why not."""
    phone = numbering.phone(raw)
    if phone is None:
        raise ValueError(f"{raw!r} is not a valid E.164 number")
    if phone.e164 == owner.e164:
        raise ValueError(f"{phone.e164} is the number itself; expected the phones its calls go to")
    kind = TARGET_KINDS.get(phone.type)
    if kind is None:
        reason = REFUSED_TARGETS.get(phone.type, REFUSED_TARGETS[PhoneNumberType.UNKNOWN])
        raise ValueError(f"{phone.e164} is {reason}; expected a landline or mobile number")
    if owner.region is not None and phone.region != owner.region and not owner.international:
        raise ValueError(f"{phone.e164} is in {phone.region or 'no country'}, {owner.e164} in {owner.region}; "
                         "expected a target in the number's country, or international_forwarding: true "
                         "on the number (its forwarded calls are then never fair-use eligible)")
    return Target(phone.e164, kind, ring_seconds)


# Number types that phonenumbers can confirm from the number itself.
_TYPE_CHECKS = {
    NumberType.TOLLFREE: PhoneNumberType.TOLL_FREE,
    NumberType.PREMIUM: PhoneNumberType.PREMIUM_RATE,
}


def check_number_type(number_type: NumberType, e164: str) -> None:
    """Toll-free and premium numbers are priced differently: ValueError when the declared type does not fit."""
    phone = numbering.phone(e164)
    if phone is None:
        return
    for declared, kind in _TYPE_CHECKS.items():
        if (number_type is declared) != (phone.type == kind):
            raise ValueError(f"{number_type.value!r} does not fit {phone.e164}, which is "
                             f"{'a' if phone.type == kind else 'not a'} {declared.value} number")


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
