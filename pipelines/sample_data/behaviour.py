"""What simulated persons do: app sessions, web visits, checkouts and deliveries, support tickets,
staff-app use, partner trips and payouts, and the survey answers that rate it all.

Each person x role has a hidden experience ``q`` in (0, 1): the lower it is, the more often things
go wrong (crashes, web errors, declines, late deliveries, slow or unresolved tickets). Every failure
is remembered with a time and a severity, and a survey answer is

    x = 0.1 + 0.9 q - c * sum(severity_i * 2^(-(t - t_i) / 7 days)) + N(0, 0.12)

clipped to [0, 1] and mapped onto the survey's scale (NPS 0-10, CSAT 1-5, CES 1-7 with higher =
easier; c is 0.1 for NPS, 0.08-0.09 for CSAT/CES), so a model of decayed failure signals can
predict the answers. Severities: rage click / abandoned checkout 0.5, repeat contact 0.6,
cancellation 0.7, crash / web error / slow agent reply / reopened ticket 1.0, late delivery 1.2,
payment decline / late payout 1.5, ticket closed unresolved 2.0.

Events are emitted per channel as ``(record, person_id, role, time_ms, utc_offset_min)``; records
hold only the fields that are set (writers add nulls/defaults as their format requires).
"""

from __future__ import annotations

import random

from .clock import DAY_MS, HOUR_MS, LOCAL, LOCAL_MS, MINUTE_MS, UTC, UTC_MS, iso
from .people import JUNK_EMAILS, KIOSKS, QUEUE, UID_FIELD, ZERO_DEVICE, Person, RoleState, agent_pool

HALF_LIFE_MS = 7 * DAY_MS
# random 128 bits -> UUID version 4, RFC 4122 variant
_UUID_MASK = ((1 << 128) - 1) ^ (0xF << 76) ^ (0x3 << 62)
_UUID_V4 = (0x4 << 76) | (0x2 << 62)
SURVEY_RANGE = {"nps": (0, 10), "csat": (1, 5), "ces": (1, 7)}

# local hour of an activity, weighted towards evenings
_HOURS = [h for h, w in enumerate((0, 0, 0, 0, 0, 0, 1, 3, 5, 5, 5, 5, 6, 6, 5, 5, 5, 6, 8, 9, 9, 8, 5, 2)) for _ in range(w)]
_WORK_HOURS = [h for h, w in enumerate((0,) * 7 + (3, 6, 6, 6, 5, 5, 6, 6, 5, 4, 2, 1) + (0,) * 5) for _ in range(w)]

APP_SCREENS = ("home", "search", "product", "cart", "orders", "order_status", "profile", "offers", "help")
FEATURES = ("favourite", "share", "filter", "apply_voucher", "track_order", "rate_item", "dark_mode")
STAFF_SCREENS = ("roster", "tasks", "inbox", "timesheet", "training", "expenses")
STAFF_FEATURES = ("clock_in", "clock_out", "approve_request", "submit_expense", "swap_shift")
PARTNER_SCREENS = ("trip_offer", "navigation", "earnings", "ratings", "documents", "heatmap")
PARTNER_FEATURES = ("accept_trip", "decline_trip", "start_trip", "end_trip", "go_online", "go_offline")
CRASHES = ("NullPointerException", "OutOfMemoryError", "EXC_BAD_ACCESS", "IllegalStateException", "ANR")
WEB_PATHS = ("/", "/offers", "/search", "/help", "/account", "/orders", "/cart", "/stores", "/blog/autumn-picks")
REFERRERS = ("https://www.google.com/", "https://www.bing.com/", "https://news.example.net/", "https://social.example/")
DECLINES = ("insufficient_funds", "card_expired", "do_not_honor", "risk_block", "authentication_required")
TOPICS = {"customer": ("account", "app_problem", "voucher", "other"), "employee": ("laptop", "access", "payroll", "vpn"),
          "partner": ("payout", "documents", "trip_dispute", "app_problem")}
METHODS = ("email", "email", "email", "chat", "chat", "chat", "phone", "phone", "phone", "web_form")


class BlockSim:
    """Simulates the persons of one block into per-channel event lists."""

    def __init__(self, rng: random.Random, seed: int, persons_total: int, t0: int, days: int, weekday0: int):
        self.rng = rng
        self.r = rng.random
        self.bits = rng.getrandbits
        self.t0 = t0
        self.t_end = t0 + days * DAY_MS
        self.days = days
        self.weekday0 = weekday0
        self.agents = agent_pool(seed, persons_total)
        self.app: list = []
        self.web: list = []
        self.support: list = []
        self.transactions: list = []
        self.checkout_session: tuple[str, str] = ("", "")  # (device, session) of the last app checkout

    # ------------------------------------------------------------------ small helpers
    def at(self, midnight: int, hours=_HOURS) -> int:
        r = self.r
        return midnight + hours[int(r() * len(hours))] * HOUR_MS + int(r() * HOUR_MS)

    def email(self, p: Person) -> str | None:
        """One spelling of one of the person's e-mails (mostly the first), or, in 0.5% of cases, junk."""
        r = self.r
        if r() < 0.005:
            return JUNK_EMAILS[int(r() * len(JUNK_EMAILS))]
        variants = p.email_variants
        if not variants:
            return None
        n = len(variants)
        spellings = variants[0 if n == 1 or r() < 0.7 else 1 + int(r() * (n - 1))]
        return spellings[int(r() * len(spellings))]

    def phone(self, p: Person) -> str | None:
        if not p.phones:
            return None
        spellings = p.phones[0][1]
        return spellings[int(self.r() * len(spellings))]

    def fail(self, state: RoleState, t: int, severity: float) -> None:
        state.fails.append((t, severity))

    def answer(self, state: RoleState, t: int, kind: str, friction: float = 0.1) -> int:
        load = 0.0
        for ti, sev in state.fails:
            if ti <= t:
                age = t - ti
                if age < 10 * HALF_LIFE_MS:
                    load += sev * 2.0 ** (-age / HALF_LIFE_MS)
        x = 0.1 + 0.9 * state.q - friction * load + self.rng.gauss(0.0, 0.12)
        x = 0.0 if x < 0 else (1.0 if x > 1 else x)
        lo, hi = SURVEY_RANGE[kind]
        return lo + int(round(x * (hi - lo)))

    def sid(self) -> str:
        return "s-" + self.bits(64).to_bytes(8, "big").hex()

    # ------------------------------------------------------------------ per-channel emitters
    def _app(self, p: Person, role: str, t: int, etype: str, dev: str, sid: str, uid: str | None, extra=None):
        if t >= self.t_end:
            return
        u = self.r()
        h = ((self.bits(128) & _UUID_MASK) | _UUID_V4).to_bytes(16, "big").hex()
        rec = {
            "event_id": f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}",  # UUID v4
            "occurred_at": iso(t, p.offset, LOCAL_MS if u < 0.6 else UTC_MS),
            "event_type": etype,
            # ~0.3% of SDK events carry the all-zero id (tracking disabled / emulator)
            "device_id": dev if (u * 997.0) % 1.0 >= 0.003 else ZERO_DEVICE,
            "platform": p.device_platform.get(dev, "android"),
            "app_version": p.app_version,
            "session_id": sid,
        }
        if uid is not None:
            rec[UID_FIELD[role]] = uid
        if extra:
            rec.update(extra)
        self.app.append((rec, p.pid, role, t, p.offset))

    def _web(self, p: Person, role: str, t: int, etype: str, cookie: str, sid: str, uid: str | None, url: str, extra=None):
        if t >= self.t_end:
            return
        rec = {
            "event_id": self.bits(96).to_bytes(12, "big").hex(),
            "occurred_at": iso(t, p.offset, UTC_MS if self.r() < 0.7 else UTC),
            "event_type": etype,
            "cookie_id": cookie,
            "session_id": sid,
            "url": url,
        }
        if uid is not None:
            rec[UID_FIELD[role]] = uid
        if extra:
            rec.update(extra)
        self.web.append((rec, p.pid, role, t, p.offset))

    def _tx(self, p: Person, role: str, t: int, etype: str, order_id: str, amount: int, extra=None):
        if t >= self.t_end:
            return
        u = self.r()
        rec = {
            "event_id": "txn_" + self.bits(96).to_bytes(12, "big").hex(),
            "occurred_at": iso(t, p.offset, UTC if u < 0.4 else (LOCAL if u < 0.7 else UTC_MS)),
            "event_type": etype,
            "order_id": order_id,
            "amount_minor": amount,
            "currency": p.currency,
        }
        rec[UID_FIELD[role]] = p.roles[role].uid
        if extra:
            rec.update(extra)
        self.transactions.append((rec, p.pid, role, t, p.offset))

    # ------------------------------------------------------------------ the simulation
    def person(self, p: Person) -> None:
        roles = p.roles
        customer, employee, partner = roles.get("customer"), roles.get("employee"), roles.get("partner")
        r = self.r
        for d in range(self.days):
            midnight = self.t0 + d * DAY_MS - p.offset * MINUTE_MS
            weekday = (self.weekday0 + d) % 7
            if customer is not None:
                self.customer_day(p, customer, d, midnight)
            if employee is not None:
                if r() < (0.6 if weekday < 5 else 0.08):
                    self.staff_session(p, employee, d, self.at(midnight, _WORK_HOURS))
                if r() < 0.008 * (1.5 - employee.q):
                    self.ticket(p, employee, self.at(midnight, _WORK_HOURS), TOPICS["employee"][int(r() * 4)])
            if partner is not None:
                if r() < 0.5:
                    self.partner_session(p, partner, d, self.at(midnight))
                if weekday == 0:
                    self.payout(p, partner, midnight)
                if r() < 0.01 * (1.5 - partner.q):
                    self.ticket(p, partner, self.at(midnight), TOPICS["partner"][int(r() * 4)])

    def customer_day(self, p: Person, st: RoleState, d: int, midnight: int) -> None:
        r = self.r
        a = p.activity
        if p.app_user and r() < 0.17 * a:
            self.app_session(p, st, d, self.at(midnight))
        if p.web_user and r() < 0.12 * a:
            self.web_visit(p, st, d, self.at(midnight))
        if r() < 0.04 * a:
            self.checkout(p, st, d, self.at(midnight))
        if r() < 0.005 * (1.5 - st.q):
            self.ticket(p, st, self.at(midnight), TOPICS["customer"][int(r() * 4)])
        if p.kiosk_user and r() < 0.08:
            self.kiosk_session(p, st, self.at(midnight))

    def _survey_prompt(self, st: RoleState, d: int, every_days: int) -> bool:
        """Periodic in-product NPS prompt: shown at most every ``every_days``, answered ~45%."""
        r = self.r
        if d - st.last_prompt >= every_days and r() < 0.5:
            st.last_prompt = d
            return r() < 0.45
        return False

    def _app_device(self, p: Person) -> str:
        r = self.r
        if p.shared_device is not None and r() < 0.3:
            return p.shared_device
        devices = p.app_devices
        if len(devices) > 1 and r() < 0.3:
            return devices[1 + int(r() * (len(devices) - 1))]
        return devices[0]

    def app_session(self, p: Person, st: RoleState, d: int, t: int, checkout_order: str | None = None):
        r = self.r
        dev = self._app_device(p)
        sid = self.sid()
        uid = st.uid if p.device_login.get(dev) else None
        self._app(p, "customer", t, "app_open", dev, sid, uid)
        if uid is None and (r() < 0.6 or checkout_order is not None):
            t += 8_000 + int(r() * 40_000)
            email = self.email(p) if r() < 0.8 else None
            self._app(p, "customer", t, "login", dev, sid, st.uid, {"email": email} if email is not None else None)
            uid = st.uid
            p.device_login[dev] = True
        n = 1 + int(r() * 3)
        crash_at = int(r() * (n + 1)) if r() < 0.03 + 0.22 * (1 - st.q) and checkout_order is None else -1
        for i in range(n + 1):
            t += 4_000 + int(r() * 90_000)
            if i == crash_at:
                self._app(p, "customer", t, "app_crash", dev, sid, uid,
                          {"screen": APP_SCREENS[int(r() * 9)], "properties": {"exception": CRASHES[int(r() * 5)], "fatal": "true"}})
                self.fail(st, t, 1.0)
                return t
            if i == n:
                break
            self._app(p, "customer", t, "screen_view", dev, sid, uid, {"screen": APP_SCREENS[int(r() * 9)]})
            u = r()
            if u < 0.25:
                t += 2_000 + int(r() * 20_000)
                self._app(p, "customer", t, "feature_used", dev, sid, uid, {"properties": {"feature": FEATURES[int(r() * 7)]}})
            elif u < 0.37:
                t += 2_000 + int(r() * 20_000)
                self._app(p, "customer", t, "search", dev, sid, uid, {"screen": "search", "properties": {"results": str(int(r() * 40))}})
            elif u < 0.45:
                t += 2_000 + int(r() * 20_000)
                self._app(p, "customer", t, "add_to_cart", dev, sid, uid, {"screen": "product"})
        if checkout_order is not None:
            t += 10_000 + int(r() * 60_000)
            self._app(p, "customer", t, "checkout_started", dev, sid, uid, {"screen": "cart", "order_id": checkout_order})
            self.checkout_session = (dev, sid)
            return t
        if self._survey_prompt(st, d, 12):
            t += 5_000 + int(r() * 30_000)
            self._app(p, "customer", t, "survey_response", dev, sid, uid,
                      {"survey": {"kind": "nps", "score": self.answer(st, t, "nps")}})
        if uid is not None and r() < 0.04:
            t += 5_000
            self._app(p, "customer", t, "logout", dev, sid, uid)
            p.device_login[dev] = False
        return t

    def kiosk_session(self, p: Person, st: RoleState, t: int) -> None:
        """A shared in-store kiosk: many customers, each signs in with their own customer_id."""
        r = self.r
        dev = KIOSKS[int(r() * len(KIOSKS))]
        sid = self.sid()
        self._app(p, "customer", t, "app_open", dev, sid, None)
        t += 10_000 + int(r() * 30_000)
        email = self.email(p) if r() < 0.5 else None
        self._app(p, "customer", t, "login", dev, sid, st.uid, {"email": email} if email is not None else None)
        for _ in range(1 + int(r() * 3)):
            t += 5_000 + int(r() * 60_000)
            self._app(p, "customer", t, "screen_view", dev, sid, st.uid, {"screen": APP_SCREENS[int(r() * 9)]})
        t += 5_000 + int(r() * 30_000)
        self._app(p, "customer", t, "logout", dev, sid, st.uid)

    def cookie(self, p: Person, d: int) -> str:
        """The browser cookie used on day d: mostly the newest one already set, sometimes an older one."""
        cookies = p.cookies
        live = 0
        for k, (_c, first_day) in enumerate(cookies):
            if first_day <= d:
                live = k
        if live and self.r() < 0.25:
            live = int(self.r() * live)
        return cookies[live][0]

    def web_visit(self, p: Person, st: RoleState, d: int, t: int, checkout_order: str | None = None):
        """A browsing session: starts anonymous, ~60% log in (those who ever do), errors by q."""
        r = self.r
        cookie = self.cookie(p, d)
        sid = self.sid()
        b = 1 - st.q
        n = 2 + int(r() * 4)
        must_login = checkout_order is not None
        login_at = int(r() * n) if (p.web_login and r() < 0.6) or must_login else -1
        if must_login:
            login_at = min(login_at, n - 1)
        err_at = int(r() * n) if r() < 0.02 + 0.2 * b else -1
        rage_at = int(r() * n) if r() < 0.03 + 0.22 * b else -1
        uid = None
        ua = p.ua
        for i in range(n):
            t += 3_000 + int(r() * 80_000)
            if i == login_at:
                email = self.email(p) if r() < 0.4 else None
                self._web(p, "customer", t, "login", cookie, sid, st.uid, "https://www.example.com/login",
                          {"email": email} if email is not None else None)
                uid = st.uid
                t += 2_000 + int(r() * 10_000)
            path = WEB_PATHS[int(r() * 9)]
            url = f"https://www.example.com{path}"
            if i == err_at:
                self._web(p, "customer", t, "web_error", cookie, sid, uid, url,
                          {"http_status": (500, 502, 503, 504)[int(r() * 4)], "user_agent": ua,
                           "properties": {"error": "upstream_timeout" if r() < 0.5 else "internal_error"}})
                self.fail(st, t, 1.0)
                continue
            if i == 0:
                extra = {"user_agent": ua, "http_status": 200}
                if r() < 0.5:
                    extra["referrer"] = REFERRERS[int(r() * 4)]
                self._web(p, "customer", t, "page_view", cookie, sid, uid, url, extra)
            else:
                u = r()
                if u < 0.55:
                    self._web(p, "customer", t, "page_view", cookie, sid, uid, url, {"user_agent": ua})
                elif u < 0.8:
                    self._web(p, "customer", t, "click", cookie, sid, uid, url, {"properties": {"element": f"btn-{int(r() * 20)}"}})
                elif u < 0.95:
                    self._web(p, "customer", t, "search", cookie, sid, uid, "https://www.example.com/search",
                              {"properties": {"query_length": str(3 + int(r() * 20))}})
                else:
                    self._web(p, "customer", t, "add_to_cart", cookie, sid, uid, url)
            if i == rage_at:
                t += 1_000 + int(r() * 3_000)
                self._web(p, "customer", t, "rage_click", cookie, sid, uid, url, {"properties": {"clicks": str(4 + int(r() * 8))}})
                self.fail(st, t, 0.5)
        if checkout_order is not None:
            t += 10_000 + int(r() * 60_000)
            self._web(p, "customer", t, "checkout_started", cookie, sid, uid, "https://www.example.com/checkout",
                      {"order_id": checkout_order})
            return t, cookie, sid, uid
        u = r()
        if u < 0.04:
            t += 20_000 + int(r() * 60_000)
            email = self.email(p)
            self._web(p, "customer", t, "form_submit", cookie, sid, uid, "https://www.example.com/contact",
                      {"email": email, "properties": {"form": "contact"}} if email is not None else {"properties": {"form": "contact"}})
        elif u < 0.045 and uid is None:
            t += 20_000
            self._web(p, "customer", t, "signup", cookie, sid, None, "https://www.example.com/newsletter",
                      {"properties": {"list": "newsletter"}})
        if self._survey_prompt(st, d, 20):
            t += 5_000 + int(r() * 30_000)
            self._web(p, "customer", t, "survey_response", cookie, sid, uid, url,
                      {"survey": {"kind": "nps", "score": self.answer(st, t, "nps")}})
        if uid is not None and r() < 0.05:
            t += 5_000
            self._web(p, "customer", t, "logout", cookie, sid, uid, "https://www.example.com/logout")
        return t, cookie, sid, uid

    def checkout(self, p: Person, st: RoleState, d: int, t: int) -> None:
        """checkout_started (app or web) -> abandoned | declined (-> retry | support) | placed -> delivery."""
        r = self.r
        b = 1 - st.q
        order_id = f"ORD-{self.bits(56):017d}"
        amount = int(self.rng.lognormvariate(7.8, 0.6))
        via_web = not p.app_user or (p.web_user and r() < 0.35)
        if via_web:
            t, cookie, sid, uid = self.web_visit(p, st, d, t, checkout_order=order_id)
        else:
            t = self.app_session(p, st, d, t, checkout_order=order_id)
        if t >= self.t_end:
            return
        if r() < 0.12 + 0.25 * b:  # abandoned
            t += 30_000 + int(r() * 600_000)
            if via_web:
                self._web(p, "customer", t, "checkout_abandoned", cookie, sid, uid, "https://www.example.com/checkout")
            else:
                dev, sid = self.checkout_session
                self._app(p, "customer", t, "checkout_abandoned", dev, sid, st.uid, {"screen": "cart", "order_id": order_id})
            self.fail(st, t, 0.5)
            return
        card = p.cards[0] if len(p.cards) == 1 or r() < 0.7 else p.cards[1]
        t += 20_000 + int(r() * 60_000)
        if r() < 0.04 + 0.2 * b:  # declined
            self._tx(p, "customer", t, "payment_declined", order_id, amount,
                     {"card_fingerprint": card, "decline_reason": DECLINES[int(r() * 5)]})
            self.fail(st, t, 1.5)
            if r() < 0.55:  # retried with another card / after topping up
                t += 120_000 + int(r() * 1_800_000)
                card = p.cards[-1]
            else:
                if r() < 0.3 + 0.4 * b:  # calls / writes support within hours, on another channel
                    self.ticket(p, st, t + 1_800_000 + int(r() * 5 * HOUR_MS), "payment")
                return
        extra = {"card_fingerprint": card}
        if r() < 0.5:
            email = self.email(p)
            if email is not None:
                extra["email"] = email
        self._tx(p, "customer", t, "order_placed", order_id, amount, extra)
        t += 1_000 + int(r() * 5_000)
        self._tx(p, "customer", t, "payment_succeeded", order_id, amount,
                 {"card_fingerprint": card, "properties": {"method": "card"}})
        if r() < 0.08 and via_web:  # effort survey after a web checkout
            t2 = t + 30_000
            self._web(p, "customer", t2, "survey_response", cookie, sid, uid, "https://www.example.com/checkout/done",
                      {"survey": {"kind": "ces", "score": self.answer(st, t2, "ces", 0.09)}})
        if r() < 0.02 + 0.06 * b:  # cancelled, refunded
            t += HOUR_MS + int(r() * 11 * HOUR_MS)
            self._tx(p, "customer", t, "order_cancelled", order_id, amount, {"properties": {"by": "customer" if r() < 0.6 else "store"}})
            self.fail(st, t, 0.7)
            t += DAY_MS + int(r() * 2 * DAY_MS)
            self._tx(p, "customer", t, "refund_issued", order_id, amount, {"properties": {"reason": "cancelled"}})
            return
        t += 6 * HOUR_MS + int(r() * 24 * HOUR_MS)
        extra = {}
        phone = self.phone(p) if r() < 0.4 else None
        if phone is not None:
            extra["phone"] = phone
        self._tx(p, "customer", t, "order_shipped", order_id, 0, extra)
        if r() < 0.05 + 0.35 * b:  # late
            t += 2 * DAY_MS + int(r() * 2 * DAY_MS)
            days_late = 1 + int(r() * 3)
            self._tx(p, "customer", t, "delivery_late", order_id, 0, {"properties": {"days_late": str(days_late)}})
            self.fail(st, t, 1.2)
            if r() < 0.15 + 0.35 * b:
                self.ticket(p, st, t + 2 * HOUR_MS + int(r() * 20 * HOUR_MS), "delivery")
            t += days_late * DAY_MS
            self._tx(p, "customer", t, "order_delivered", order_id, 0, {"properties": {"on_time": "false"}})
            if r() < 0.25:
                t += HOUR_MS + int(r() * DAY_MS)
                self._tx(p, "customer", t, "refund_issued", order_id, max(1, amount // 5), {"properties": {"reason": "late_delivery"}})
        else:
            t += DAY_MS + int(r() * 2 * DAY_MS)
            self._tx(p, "customer", t, "order_delivered", order_id, 0, {"properties": {"on_time": "true"}})

    # ------------------------------------------------------------------ support
    def ticket(self, p: Person, st: RoleState, t: int, topic: str, depth: int = 0) -> None:
        """ticket_opened -> agent_response (fast/slow) -> customer_contact repeats -> resolved | closed
        unresolved, sometimes reopened; CSAT/CES after; a second ticket within 7 days after a bad one."""
        if t >= self.t_end:
            return
        r = self.r
        role = st.role
        b = 1 - st.q
        method = METHODS[int(r() * len(METHODS))]
        ticket_id = f"TCK-{self.bits(48):012X}"
        fields = {"ticket_id": ticket_id, "contact_method": method, "queue": QUEUE[role]}
        if method in ("email", "web_form") or r() < 0.8:
            email = self.email(p)
            if email is not None:
                fields["requester_email"] = email
        if p.phones and (r() < 0.9 if method == "phone" else r() < 0.1):
            fields["requester_phone"] = self.phone(p)
        if role != "customer" or r() < 0.35:
            fields[UID_FIELD[role]] = st.uid
        agents = self.agents
        own = st.uid if role == "employee" else None
        agent = agents[int(r() * len(agents))]
        while agent == own:
            agent = agents[int(r() * len(agents))]
        bad = False

        def emit(t, etype, with_agent=False, props=None, survey=None):
            if t >= self.t_end:
                return
            rec = {"event_id": "evt_" + self.bits(80).to_bytes(10, "big").hex(),
                   "occurred_at": iso(t, p.offset, UTC if r() < 0.5 else LOCAL), "event_type": etype}
            rec.update(fields)
            if with_agent:
                rec["agent_id"] = agent
            if props:
                rec["properties"] = props
            if survey is not None:
                rec["survey"] = survey
            self.support.append((rec, p.pid, role, t, p.offset))

        emit(t, "ticket_opened", props={"topic": topic, "priority": "high" if r() < 0.15 else "normal"})
        slow_p = 0.1 + 0.5 * b
        first = True
        contacts = 0
        while True:
            if r() < slow_p:
                t += 8 * HOUR_MS + int(r() * 40 * HOUR_MS)
                self.fail(st, t, 1.0)
                bad = True
            else:
                t += 5 * MINUTE_MS + int(r() * 85 * MINUTE_MS)
            emit(t, "agent_response", True, {"first_response": "true"} if first else None)
            first = False
            if contacts >= 4 or r() >= 0.15 + 0.5 * b:
                break
            contacts += 1
            t += HOUR_MS + int(r() * 23 * HOUR_MS)
            emit(t, "customer_contact")
            self.fail(st, t, 0.6)
        t += 10 * MINUTE_MS + int(r() * 6 * HOUR_MS)
        if r() < 0.9 - 0.5 * b:
            emit(t, "ticket_resolved", True)
            if r() < 0.05 + 0.25 * b:
                t += DAY_MS + int(r() * 2 * DAY_MS)
                emit(t, "ticket_reopened")
                self.fail(st, t, 1.0)
                bad = True
                t += HOUR_MS + int(r() * 20 * HOUR_MS)
                emit(t, "agent_response", True)
                t += HOUR_MS + int(r() * 20 * HOUR_MS)
                if r() < 0.7:
                    emit(t, "ticket_resolved", True)
                else:
                    emit(t, "ticket_closed", True, {"resolution": "unresolved"})
                    self.fail(st, t, 2.0)
        else:
            emit(t, "ticket_closed", True, {"resolution": "unresolved"})
            self.fail(st, t, 2.0)
            bad = True
        if r() < 0.35:  # CSAT after the ticket ends
            ts = t + HOUR_MS + int(r() * 23 * HOUR_MS)
            emit(ts, "survey_response", survey={"kind": "csat", "score": self.answer(st, ts, "csat", 0.08)})
        if r() < 0.15:  # effort (CES: higher = easier)
            ts = t + HOUR_MS + int(r() * 23 * HOUR_MS)
            emit(ts, "survey_response", survey={"kind": "ces", "score": self.answer(st, ts, "ces", 0.09)})
        if bad and depth == 0 and r() < 0.3 + 0.3 * b:
            self.ticket(p, st, t + 6 * HOUR_MS + int(r() * 6 * DAY_MS), topic, depth + 1)

    # ------------------------------------------------------------------ staff and partners
    def staff_session(self, p: Person, st: RoleState, d: int, t: int) -> None:
        """The staff app: always signed in with the employee_id (work e-mail on login events)."""
        r = self.r
        dev = p.staff_device
        sid = self.sid()
        uid = st.uid
        props = {"app": "staff"}
        self._app(p, "employee", t, "app_open", dev, sid, uid, {"properties": props})
        if r() < 0.2:
            t += 5_000 + int(r() * 20_000)
            extra = {"properties": props}
            if p.work_email is not None and r() < 0.8:
                spellings = p.email_variants[-1]
                extra["email"] = spellings[int(r() * len(spellings))]
            self._app(p, "employee", t, "login", dev, sid, uid, extra)
        crash = r() < 0.02 + 0.15 * (1 - st.q)
        for i in range(1 + int(r() * 3)):
            t += 10_000 + int(r() * 120_000)
            self._app(p, "employee", t, "screen_view", dev, sid, uid, {"screen": STAFF_SCREENS[int(r() * 6)], "properties": props})
            if r() < 0.4:
                t += 5_000 + int(r() * 30_000)
                self._app(p, "employee", t, "feature_used", dev, sid, uid,
                          {"properties": {"app": "staff", "feature": STAFF_FEATURES[int(r() * 5)]}})
        if crash:
            t += 5_000 + int(r() * 30_000)
            self._app(p, "employee", t, "app_crash", dev, sid, uid,
                      {"properties": {"app": "staff", "exception": CRASHES[int(r() * 5)], "fatal": "true"}})
            self.fail(st, t, 1.0)
        elif self._survey_prompt(st, d, 25):
            t += 5_000 + int(r() * 30_000)
            self._app(p, "employee", t, "survey_response", dev, sid, uid,
                      {"survey": {"kind": "nps", "score": self.answer(st, t, "nps")}, "properties": props})

    def partner_session(self, p: Person, st: RoleState, d: int, t: int) -> None:
        """The partner (driver) app: online, a few trips, earnings; crashes by q."""
        r = self.r
        dev = p.partner_device
        sid = self.sid()
        uid = st.uid
        self._app(p, "partner", t, "app_open", dev, sid, uid, {"properties": {"app": "partner"}})
        t += 5_000 + int(r() * 30_000)
        self._app(p, "partner", t, "feature_used", dev, sid, uid, {"properties": {"app": "partner", "feature": "go_online"}})
        crash_at = int(r() * 3) if r() < 0.03 + 0.2 * (1 - st.q) else -1
        for i in range(1 + int(r() * 3)):
            t += 5 * MINUTE_MS + int(r() * 40 * MINUTE_MS)
            self._app(p, "partner", t, "screen_view", dev, sid, uid, {"screen": PARTNER_SCREENS[int(r() * 6)], "properties": {"app": "partner"}})
            if i == crash_at:
                t += 10_000 + int(r() * 60_000)
                self._app(p, "partner", t, "app_crash", dev, sid, uid,
                          {"properties": {"app": "partner", "exception": CRASHES[int(r() * 5)], "fatal": "true"}})
                self.fail(st, t, 1.0)
                return
            t += 10_000 + int(r() * 60_000)
            self._app(p, "partner", t, "feature_used", dev, sid, uid,
                      {"properties": {"app": "partner", "feature": PARTNER_FEATURES[int(r() * 6)]}})
        if self._survey_prompt(st, d, 14):
            t += 5_000 + int(r() * 30_000)
            self._app(p, "partner", t, "survey_response", dev, sid, uid,
                      {"survey": {"kind": "nps", "score": self.answer(st, t, "nps")}, "properties": {"app": "partner"}})

    def payout(self, p: Person, st: RoleState, midnight: int) -> None:
        """Weekly payout to a partner; late by 1-3 days more often for low q."""
        r = self.r
        t = midnight + 9 * HOUR_MS + int(r() * 3 * HOUR_MS)
        props = {"kind": "weekly"}
        if r() < 0.05 + 0.3 * (1 - st.q):
            t += DAY_MS * (1 + int(r() * 3))
            props = {"kind": "weekly", "delayed": "true"}
            self.fail(st, t, 1.5)
        amount = int(self.rng.lognormvariate(10.5, 0.5))
        extra = {"properties": props}
        if r() < 0.2:
            email = self.email(p)
            if email is not None:
                extra["email"] = email
        self._tx(p, "partner", t, "payout_sent", f"PAY-{self.bits(56):017d}", amount, extra)
