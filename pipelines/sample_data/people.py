"""Simulated persons: roles, unique ids, emails, phones, devices, cookies, cards, households.

Everything a person *is* lives here; what a person *does* lives in :mod:`.behaviour`.

Unique ids (customer ``C`` + 8 digits, employee ``E`` + 6, partner ``P`` + 7) and the numbers in
e-mail addresses and phone numbers are bijections of the person index, so they never collide
between persons; a person's roles come from a hash of (seed, index), so any block can tell who the
employees are (support agents are drawn from them) without generating the others.
"""

from __future__ import annotations

import functools
import hashlib
import random

from .config import MAX_PERSONS

ROLES = ("customer", "employee", "partner")
UID_FIELD = {"customer": "customer_id", "employee": "employee_id", "partner": "partner_id"}
QUEUE = {"customer": "customer_care", "employee": "staff_helpdesk", "partner": "partner_support"}

# (cumulative probability, roles): ~90% customer, ~4% customer+employee, ~2% employee, ~4% customer+partner
ROLE_MIX = (
    (0.90, ("customer",)),
    (0.94, ("customer", "employee")),
    (0.96, ("employee",)),
    (1.00, ("customer", "partner")),
)

ZERO_DEVICE = "00000000-0000-0000-0000-000000000000"
KIOSKS = tuple(f"kiosk-{city}-{n:02d}" for city in ("lon", "ber", "ams", "nyc") for n in (1, 2))
JUNK_EMAILS = ("test@test.com", "null", "", "undefined", "none@none.com")

FIRST = (
    "alice", "amir", "anna", "ben", "carla", "chen", "chloe", "daniel", "david", "elena", "emma", "fatima",
    "felix", "grace", "hannah", "hugo", "ines", "isaac", "jack", "jana", "jonas", "julia", "kai", "karim",
    "laura", "leo", "lina", "lucas", "maria", "mateo", "maya", "mia", "noah", "nora", "oliver", "olivia",
    "omar", "paul", "priya", "rafael", "sara", "sofia", "tom", "wei", "yusuf", "zoe",
)
LAST = (
    "adams", "bakker", "becker", "brown", "clarke", "costa", "dubois", "evans", "fischer", "garcia",
    "hughes", "jansen", "johnson", "khan", "klein", "lee", "lopez", "martin", "meyer", "miller", "moreau",
    "murphy", "nguyen", "novak", "okafor", "patel", "rossi", "schmidt", "silva", "singh", "smith",
    "taylor", "visser", "wagner", "walker", "weber", "williams", "wilson", "wright", "young",
)
DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "inbox.example")
WORK_DOMAIN = "corp.example.com"

# country[-region]: (weight, UTC offset in minutes, currency, calling code, national prefix digits)
COUNTRIES = {
    "GB": (0.40, 60, "GBP", "44", "207"),
    "DE": (0.20, 120, "EUR", "49", "30"),
    "NL": (0.10, 120, "EUR", "31", "20"),
    "US-E": (0.20, -240, "USD", "1", "212"),
    "US-W": (0.10, -420, "USD", "1", "415"),
}
_COUNTRY_CUM = []
_acc = 0.0
for _code, (_w, *_rest) in COUNTRIES.items():
    _acc += _w
    _COUNTRY_CUM.append((_acc, _code))

APP_VERSIONS = ("5.11.2", "5.12.0", "5.12.1", "5.13.0")
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 15; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
)


def _perm(index: int, modulus: int, mult: int, seed: int, salt: int) -> int:
    """A bijection of [0, modulus) (mult is coprime to 10), shifted by the seed."""
    return (index * mult + seed * 7_919 + salt) % modulus


def customer_id(index: int, seed: int) -> str:
    return f"C{_perm(index, 10**8, 48_271_139, seed, 13_579_111):08d}"


def employee_id(index: int, seed: int) -> str:
    return f"E{_perm(index, 10**6, 740_831, seed, 424_243):06d}"


def partner_id(index: int, seed: int) -> str:
    return f"P{_perm(index, 10**7, 3_961_793, seed, 2_718_281):07d}"


UID_MAKERS = {"customer": customer_id, "employee": employee_id, "partner": partner_id}


def person_id(index: int) -> str:
    return f"H{index:06d}"


def roles_of(index: int, seed: int) -> tuple[str, ...]:
    """The person's roles, from a hash of (seed, index) so it is known without generating them."""
    h = hashlib.blake2b(f"touchline-roles:{seed}:{index}".encode(), digest_size=8).digest()
    u = int.from_bytes(h, "big") / 2**64
    for cum, roles in ROLE_MIX:
        if u < cum:
            return roles
    return ROLE_MIX[-1][1]


@functools.lru_cache(maxsize=8)
def agent_pool(seed: int, persons: int) -> tuple[str, ...]:
    """employee_ids of support agents: up to 40 employees of the population plus 6 dedicated agents
    who are not in the population (so some agents also appear as staff-app users, none as requesters
    of the tickets they handle)."""
    agents = []
    for index in range(min(persons, 50_000)):
        if "employee" in roles_of(index, seed):
            agents.append(employee_id(index, seed))
            if len(agents) == 40:
                break
    agents.extend(employee_id(MAX_PERSONS + k, seed) for k in range(6))
    return tuple(agents)


class RoleState:
    """A person in one role: hidden experience q and the failures they went through."""

    __slots__ = ("role", "q", "uid", "fails", "last_prompt")

    def __init__(self, role: str, q: float, uid: str):
        self.role = role
        self.q = q
        self.uid = uid
        self.fails: list[tuple[int, float]] = []  # (time ms, severity)
        self.last_prompt = -10**6  # day index of the last survey prompt


class Person:
    __slots__ = (
        "index", "pid", "roles", "country", "offset", "currency", "emails", "email_variants", "phones",
        "phone_variants", "devices", "device_platform", "device_login", "cookies", "cards", "household",
        "activity", "app_user", "web_user", "web_login", "kiosk_user", "app_version", "first", "last",
        "work_email", "shared_device", "shared_email", "staff_device", "partner_device", "app_devices", "ua",
    )

    def __init__(self, index: int):
        self.index = index
        self.pid = person_id(index)
        self.household: int | None = None
        self.shared_device: str | None = None
        self.shared_email: str | None = None
        self.work_email: str | None = None
        self.staff_device: str | None = None
        self.partner_device: str | None = None

    def truth(self) -> dict:
        roles = {}
        for role in ROLES:
            state = self.roles.get(role)
            if state is not None:
                roles[role] = {"experience": state.q, UID_FIELD[role]: state.uid}
        return {
            "person": self.pid,
            "roles": roles,
            "country": self.country.split("-")[0],
            "emails": list(self.emails),
            "phones": [p[0] for p in self.phones],
            "devices": list(self.devices),
            "cookies": [c for c, _ in self.cookies],
            "cards": list(self.cards),
            "household": person_id(self.household) if self.household is not None else None,
        }


def _beta_q(rng: random.Random) -> float:
    return round(min(0.999, max(0.001, rng.betavariate(5, 2))), 4)


def _email_variants(local: str, domain: str, display_local: str) -> tuple[str, ...]:
    """Spellings of one address seen in events; all trim+lower-case to the same address."""
    canonical = f"{local}@{domain}"
    display = f"{display_local}@{domain[:1].upper()}{domain[1:]}"
    return (canonical, canonical, canonical, display, display, f"{display} ", f" {canonical}",
            canonical.upper(), f"{canonical}\t")


def _phone(index: int, seed: int, country: str) -> tuple[str, tuple[str, ...]]:
    """(normalized digits, spellings). Spellings differ only in punctuation and the +/00 prefix."""
    _w, _off, _cur, cc, prefix = COUNTRIES[country]
    d7 = f"{_perm(index, 10**7, 8_388_607, seed, 5_550_123):07d}"
    if country == "GB":
        groups = (prefix[:2], prefix[2:] + d7[:3], d7[3:])  # 20 7946 0958
    else:
        groups = (prefix, d7[:3], d7[3:])
    spaced = " ".join(groups)
    variants = (
        f"+{cc} {spaced}", f"+{cc} {spaced}", f"00{cc} {spaced}", f"+{cc}-{'-'.join(groups)}",
        f"+{cc}{''.join(groups)}", f"(+{cc}) {spaced}",
    )
    return cc + "".join(groups), variants


def _device(rng: random.Random, platform: str) -> str:
    if platform == "ios":  # identifierForVendor style
        h = f"{rng.getrandbits(128):032X}"
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return f"{rng.getrandbits(64):016x}"  # ANDROID_ID style


def make_persons(first: int, count: int, seed: int, rng: random.Random, t0_sec: int, days: int) -> list[Person]:
    """Persons with index first..first+count-1 (one block), households paired inside the block."""
    persons = []
    r = rng.random
    for index in range(first, first + count):
        p = Person(index)
        roles = roles_of(index, seed)
        p.roles = {role: RoleState(role, _beta_q(rng), UID_MAKERS[role](index, seed)) for role in roles}
        u = r()
        p.country = next(code for cum, code in _COUNTRY_CUM if u < cum or cum == _COUNTRY_CUM[-1][0])
        _w, p.offset, p.currency, _cc, _pre = COUNTRIES[p.country]
        first_name, last_name = rng.choice(FIRST), rng.choice(LAST)
        p.first, p.last = first_name, last_name
        n = _perm(index, 10**6, 9_301, seed, 49_297)
        templates = (
            (f"{first_name}.{last_name}{n}", f"{first_name.title()}.{last_name.title()}{n}"),
            (f"{first_name[0]}{last_name}{n}", f"{first_name[0].upper()}{last_name.title()}{n}"),
            (f"{first_name}{n}", f"{first_name.title()}{n}"),
            (f"{last_name}.{first_name}{n}", f"{last_name.title()}.{first_name.title()}{n}"),
        )
        emails, variants = [], []
        if "employee" in roles:  # plus the work address below
            n_personal = 0 if roles == ("employee",) and r() < 0.5 else 1
        else:
            n_personal = 1 if r() < 0.65 else 2
        domains = list(DOMAINS)
        for k in range(n_personal):
            local, display = templates[rng.randrange(len(templates))]
            domain = domains.pop(rng.randrange(len(domains)))
            emails.append(f"{local}@{domain}")
            variants.append(_email_variants(local, domain, display))
        if "employee" in roles:
            local, display = templates[0]
            p.work_email = f"{local}@{WORK_DOMAIN}"
            emails.append(p.work_email)
            variants.append(_email_variants(local, WORK_DOMAIN, display))
        p.emails, p.email_variants = emails, variants
        if r() < 0.7:
            digits, spellings = _phone(index, seed, p.country)
            p.phones = [(digits, spellings)]
        else:
            p.phones = []
        platform = "ios" if r() < 0.55 else "android"
        n_dev = 1 if r() < 0.6 else (2 if r() < 0.75 else 3)
        p.devices, p.device_platform = [], {}
        for k in range(n_dev):
            plat = platform if k == 0 or r() < 0.7 else ("android" if platform == "ios" else "ios")
            dev = _device(rng, plat)
            p.devices.append(dev)
            p.device_platform[dev] = plat
        p.app_devices = list(p.devices)  # the customer app runs on these (plus a shared household one)
        p.device_login = {}
        p.cookies = []
        for k in range(2 + rng.randrange(4)):
            first_day = -30 + int(r() * (days + 30)) if k else -30
            first_seen = t0_sec + first_day * 86_400 + rng.randrange(86_400)
            p.cookies.append((f"{rng.getrandbits(32):010d}.{first_seen}", first_day))
        p.cookies.sort(key=lambda c: c[1])
        p.cards = [f"fp_{rng.getrandbits(64):016x}" for _ in range(1 if r() < 0.7 else 2)]
        p.activity = min(3.0, rng.gammavariate(2.0, 0.5))
        p.app_user = r() < 0.85
        p.web_user = r() < 0.7 or not p.app_user
        p.web_login = r() < 0.85
        p.kiosk_user = r() < 0.03
        p.app_version = APP_VERSIONS[rng.randrange(len(APP_VERSIONS))]
        p.ua = USER_AGENTS[rng.randrange(len(USER_AGENTS))]
        if "employee" in roles:
            # staff app: on the personal phone for half the customer+employee persons, else a work phone
            if "customer" in roles and r() < 0.5:
                p.staff_device = p.devices[0]
            else:
                p.staff_device = _device(rng, "ios")
                p.devices.append(p.staff_device)
                p.device_platform[p.staff_device] = "ios"
        if "partner" in roles:
            if r() < 0.7:
                p.partner_device = p.devices[0]
            else:
                p.partner_device = _device(rng, "android")
                p.devices.append(p.partner_device)
                p.device_platform[p.partner_device] = "android"
        persons.append(p)
    # households: ~1% of customers share a device or an e-mail with the previous customer in the block
    for i in range(1, len(persons)):
        a, b = persons[i - 1], persons[i]
        if "customer" not in a.roles or "customer" not in b.roles or a.household is not None:
            continue
        if r() >= 0.006:
            continue
        a.household, b.household = b.index, a.index
        if a.emails and a.email_variants and (r() < 0.5 or not a.devices):
            shared = a.emails[0]
            b.shared_email = shared
            b.emails.append(shared)
            b.email_variants.append(a.email_variants[0])
        else:
            dev = a.devices[0]
            b.shared_device = dev
            b.devices.append(dev)
            b.app_devices.append(dev)
            b.device_platform[dev] = a.device_platform[dev]
    return persons
