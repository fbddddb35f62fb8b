"""The five programs of docs/POLICIES.md as loadable presets.

Each preset carries only the Policy settings its column of docs/POLICIES.md speaks to; everything
else keeps the model's default. Presets are merged in the order given, so `B C` is prepaid
program B with postpaid schedule C (`manage.py load_policy_preset B C`, or
`coop.services.policy_load_presets`).

Every number cites the sentence of its seed document (/work/shared/seeds/<file>) it comes from.
Where a seed leaves a number to judgement, the comment says "CHOSEN" and why.

The presets describe rules; they are never read at run time. Computations ask the Policy version
in force (`Policy.objects.in_force(day)`), which a billing manager edits in the admin.
"""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from coop.exceptions import CoopError
from coop.models import Policy

DR = Policy.DisconnectRule
LF = Policy.LateFeeKind
ND = Policy.NonpayDisconnectRule
OP = Policy.OnlinePaymentPosting
PS = Policy.PrepaidStatement


# CHOSEN (no seed names payment limits): a prepaid program's payments are a member's top-ups, so a
# cash payment above $2,000 (about a year of a household's energy) or any other above $5,000 is
# more likely a typing error than a purchase; the clerk confirms it. A postpaid bill of a farm or
# small business may be a few thousand dollars: a cash payment above $5,000 or any other above
# $10,000 is confirmed. The largest amount (amount_maximum) keeps the model's default in both.
PREPAID_PAYMENT_LIMITS = {
    "payment_confirm_above_cash": Decimal("2000.00"),
    "payment_confirm_above": Decimal("5000.00"),
}
POSTPAID_PAYMENT_LIMITS = {
    "payment_confirm_above_cash": Decimal("5000.00"),
    "payment_confirm_above": Decimal("10000.00"),
}


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    source: str  # seed file in docs/../seeds/
    values: dict = field(default_factory=dict)
    # Billing cycles (coop.BillingCycle) the program defines: code, name, bill_day, due_day.
    cycles: tuple = ()


A = Preset(
    name="A",
    description=(
        "Prepaid program A (Jump River EC): single-phase only, portal account, signed application "
        "and clerk appointment; $50 start; cut at $0 whatever the weather; restored at $50 credit."
    ),
    source="000_657b6a25a9a98ad5.txt",
    values={
        # "Qualifications ...: Only single-phase services"
        "prepaid_single_phase_only": True,
        # "Members must create a SmartHub account" / "Must have a SmartHub account set up"
        "prepaid_requires_portal_account": True,
        # "Must sign the Application for Participation in Prepaid Program"
        "prepaid_requires_signed_application": True,
        # "Must meet with a billing clerk to get enrolled"
        "prepaid_requires_appointment": True,
        # "The agreement is for a minimum of one year to waive a security deposit"
        "prepaid_deposit_waived": True,
        "prepaid_deposit_waiver_term_months": 12,
        # "Minimum of $50 starting balance"
        "prepaid_minimum_starting_balance": Decimal("50.00"),
        # "Prepaid metering accounts will still receive a monthly bill"
        "prepaid_statement": PS.MONTHLY,
        # "If your balance reaches zero, power is automatically disconnected": cut at exactly $0.
        "disconnect_level": Decimal("0.00"),
        "disconnect_rule": DR.AT_OR_BELOW,
        # "Weather conditions will not postpone disconnection of service": no grace of any kind,
        # and "automatically" gives no time window.
        "grace_on_weekends": False,
        "grace_on_holidays": False,
        "grace_on_weather_holds": False,
        "disconnect_window_start": None,
        "disconnect_window_end": None,
        # "... disconnected until the account has at least a $50 credit"
        "restore_level": Decimal("50.00"),
        "restore_adds_accrued_debt": False,
        **PREPAID_PAYMENT_LIMITS,
    },
)

B = Preset(
    name="B",
    description=(
        "Prepaid program B (Little Ocmulgee EMC): single-phase residential, self-contained meter, "
        "200 A; $5 + $15 sign-up fees and $50 start; $10 minimum payment; cut at $0 any time; "
        "restored at $25; inactive after 7 days off; debt plan takes 35% of each payment."
    ),
    source="001_4cfe94b7f7bb46e9.txt",
    values={
        # "eligible single-phase residential accounts with self-contained meters and 200-amp service"
        "prepaid_single_phase_only": True,
        "prepaid_residential_only": True,
        "prepaid_self_contained_meter_only": True,
        "prepaid_required_amperage": 200,
        # The Member Portal is where notifications are managed; the seed does not require it.
        "prepaid_requires_portal_account": False,
        # "Prepay members are not required to pay a deposit" (no minimum term).
        "prepaid_deposit_waived": True,
        "prepaid_deposit_waiver_term_months": 0,
        # "$5.00 membership fee", "$15.00 account establishment fee",
        # "$50.00 minimum prepaid balance for daily usage" (total $70.00)
        "signup_membership_fee": Decimal("5.00"),
        "signup_account_establishment_fee": Decimal("15.00"),
        "prepaid_minimum_starting_balance": Decimal("50.00"),
        # "Minimum Prepay payment amount is $10.00"
        "prepaid_minimum_payment": Decimal("10.00"),
        # "Existing deposits or credits will be applied to account balances or the Prepay account";
        # "All outstanding fees and unbilled energy must be paid in full, or ... debt management"
        "conversion_applies_existing_credits": True,
        "conversion_requires_debts_settled": True,
        # "Prepay accounts do not receive paper statements and are not eligible for e-bills";
        # "Daily usage, charges, and payment history are available online"
        "prepaid_statement": PS.ONLINE_ONLY,
        # "automated disconnection at any time the credit balance reaches zero"
        "disconnect_level": Decimal("0.00"),
        "disconnect_rule": DR.AT_OR_BELOW,
        "grace_on_weekends": False,
        "grace_on_holidays": False,
        "grace_on_weather_holds": False,
        "disconnect_window_start": None,
        "disconnect_window_end": None,
        # "the account must be recharged to a minimum balance of $25.00"
        "restore_level": Decimal("25.00"),
        "restore_adds_accrued_debt": False,
        # "If an account remains disconnected for seven (7) days, it will be considered inactive
        # ... Daily charges will continue to apply during this period."
        "inactive_after_days": 7,
        "charges_continue_while_disconnected": True,
        # "Any remaining prepaid credit will be refunded after final billing"
        "refund_credit_on_final_bill": True,
        # "Returned checks or additional fees are charged immediately and may result in immediate
        # disconnection"
        "returned_payment_may_disconnect": True,
        # "35% of each payment will be applied to the debt until paid in full";
        # "Debt recovery does not apply to the initial $50.00 minimum prepaid balance"
        "debt_plan_share_percent": Decimal("35.00"),
        "debt_plan_exempts_initial_minimum": True,
        **PREPAID_PAYMENT_LIMITS,
    },
)

E = Preset(
    name="E",
    description=(
        "Prepaid program E (Smart Power): cut when the balance goes negative, never on weekends, "
        "holidays or extreme weather, only 10:00-11:00 on the next weekday; restored at $20 plus "
        "the debt used since credit ran out; inactive after more than 15 days; debt plan 20%."
    ),
    source="004_851b0bb529434535.txt",
    values={
        # "If your account reaches a negative balance, your electric service will automatically
        # disconnect": $0.00 itself is not yet negative.
        "disconnect_level": Decimal("0.00"),
        "disconnect_rule": DR.BELOW,
        # "a grace period (no shut off) during holidays, weekends and times of extreme hot/cold
        # weather"
        "grace_on_weekends": True,
        "grace_on_holidays": True,
        "grace_on_weather_holds": True,
        # "The first non-holiday weekday after a grace period, negative balance accounts will
        # automatically shut off between 10:00 a.m. and 11:00 a.m."
        "disconnect_window_start": datetime.time(10, 0),
        "disconnect_window_end": datetime.time(11, 0),
        # "the minimum credit balance to restore service is $20.00, plus any debt that was accrued
        # by using electricity from the time credit ran out" ($5.50 used -> $25.50 needed)
        "restore_level": Decimal("20.00"),
        "restore_adds_accrued_debt": True,
        # "Within 15 minutes of meeting the $20 credit obligation ... your power should restore"
        "restore_within_minutes": 15,
        # "discontinued for a period of more than fifteen (15) days will be considered inactive":
        # the field counts whole days off, so "more than 15" is the 16th day.
        "inactive_after_days": 16,
        # "A final bill will be mailed to the last known address on file" (no monthly statement
        # is mentioned).
        "prepaid_statement": PS.FINAL_ONLY,
        # "Returned checks and any fees will be charged ... immediately ... If this causes the
        # credit balance to fall to zero, service will automatically be disconnected."
        "returned_payment_may_disconnect": True,
        # "20% of any new purchase automatically goes to satisfy that debt": any purchase, so no
        # exemption for a first minimum balance.
        "debt_plan_share_percent": Decimal("20.00"),
        "debt_plan_exempts_initial_minimum": False,
        **PREPAID_PAYMENT_LIMITS,
    },
)

C = Preset(
    name="C",
    description=(
        "Postpaid schedule C: bills due the 1st, $10 late fee if unpaid after the 10th, reminder "
        "after the 10th, disconnect on the 22nd with a $45 collection fee; reconnect $45 in "
        "business hours, $125 after hours or same day; returned payment $15 + $45; deposits "
        "$60/$250 first meter, $0/$250 additional; online payments posted next business day."
    ),
    source="002_28eb311c328b4f89.txt",
    values={
        # "Bills are due on the 1st of each month and may be paid on or before the 10th of each
        # month without incurring a late fee": due the 1st + 9 days' grace = the 10th.
        "late_fee_grace_days": 9,
        # "All bills not paid by the 10th will be assessed a $10.00 Late Fee."
        "late_fee_kind": LF.FLAT,
        "late_fee_amount": Decimal("10.00"),
        "late_fee_percent": Decimal("0"),  # (cleared so C merged over D is consistent)
        # "Reminder notice will be sent after the 10th of each month": the 11th, due + 10 days.
        "reminder_notice_days_after_due": 10,
        # "On the 22nd of the month, unpaid bills are subject to service disconnection"
        "nonpay_disconnect_rule": ND.DAY_OF_MONTH,
        "nonpay_disconnect_day_of_month": 22,
        "nonpay_disconnect_days_after_notice": None,  # (cleared so C merged over D is valid)
        # "A Collection Fee of $45.00 applies if any disconnect processes have been initiated ..."
        "collection_fee": Decimal("45.00"),
        # "If service is disconnected, payment for all kilowatt hours used on the meter to date is
        # immediately due"
        "usage_due_at_disconnect": True,
        # "A Reconnect Fee of $125.00 applies ... after hours, on a weekend, on a holiday, or same
        # day as disconnected. If ... reconnected on a business day (other than the day of
        # disconnection) between 8:00am and 4:00pm, the Reconnect Fee will be $45.00."
        "reconnect_fee_business_hours": Decimal("45.00"),
        "reconnect_fee_after_hours": Decimal("125.00"),
        "reconnect_same_day_is_after_hours": True,
        "business_hours_start": datetime.time(8, 0),
        "business_hours_end": datetime.time(16, 0),
        # "Returned check or card payment Service Fee: $15.00";
        # "Returned check or card payment Collection Fee: $45.00"
        "returned_payment_fee": Decimal("15.00"),
        "returned_payment_collection_fee": Decimal("45.00"),
        # "Membership & First Meter Deposit: With a favorable utility credit reference: $60.00;
        # Without a favorable reference: $250.00 minimum. Additional Meter Deposit: With a
        # favorable ... reference: no additional deposit required; Without ...: $250.00 minimum"
        "deposit_first_meter_favorable": Decimal("60.00"),
        "deposit_first_meter_unfavorable": Decimal("250.00"),
        "deposit_additional_meter_favorable": Decimal("0.00"),
        "deposit_additional_meter_unfavorable": Decimal("250.00"),
        # "the payment will be posted to your cooperative account no later than the first business
        # day following the payment"
        "online_payment_posting": OP.NEXT_BUSINESS_DAY,
        **POSTPAID_PAYMENT_LIMITS,
    },
    cycles=(
        # "Bills are due on the 1st of each month." The seed gives no billing date. CHOSEN: the
        # 15th, so a bill reaches the member about two weeks before the 1st (plus the grace to the
        # 10th), the previous bill's late fee (the 11th) is on it, and it is made before the
        # disconnect day (the 22nd) of the previous bill.
        {"code": "monthly", "name": "Monthly (billed 15th, due 1st)", "bill_day": 15, "due_day": 1},
    ),
)

D = Preset(
    name="D",
    description=(
        "Postpaid late-payment policy D (JCE): three cycles plus broadband; due "
        "dates on weekends/holidays roll; 1.5% late fee; delinquent notice 2 business days after "
        "due with a disconnect date; disconnect fee $50, after-hours reconnect $150, same-day "
        "reconnect until 22:00; 7 days off -> $500 deposit; returned check $20; checks refused 12 "
        "months after 2 returns in 12; no arrangement after 2 broken in 12 months."
    ),
    source="003_d9436e69c8296eda.txt",
    values={
        # "Bill due dates that fall on a weekend or holiday will not be considered delinquent until
        # the next regular business workday of the co-op."
        "due_date_rolls_to_business_day": True,
        # "If payment from any member is not received by the due date, the balance will be
        # considered past due and a delinquent fee of 1.5% will be assessed"
        "late_fee_kind": LF.PERCENT,
        "late_fee_percent": Decimal("1.50"),
        "late_fee_amount": Decimal("0.00"),  # (cleared so D merged over C is consistent)
        "late_fee_grace_days": 0,
        # "If payment is not received within two business days of the due date, a delinquent
        # notice will be issued ... and a printed disconnect date."
        "delinquent_notice_business_days_after_due": 2,
        "delinquent_notice_shows_disconnect_date": True,
        # "If the member's delinquent account is not satisfied by the disconnect date, the
        # delinquent account will be subject to being disconnected."
        "nonpay_disconnect_rule": ND.DAYS_AFTER_NOTICE,
        "nonpay_disconnect_day_of_month": None,  # (cleared so D merged over C is consistent)
        # CHOSEN: the seed prints a disconnect date on the notice but never says how far after the
        # notice it is. 10 calendar days is a common notice period; the manager sets the real one.
        "nonpay_disconnect_days_after_notice": 10,
        # "Prudent judgment by management will be used ... in extreme weather conditions, ...
        # severe financial or economic loss ..., or when public health is a concern."
        "management_may_defer_disconnect": True,
        # "Disconnect fee for regular office hours — $50"; "Reconnect fee after hours — $150"
        # (the seed names no separate business-hours reconnect fee, so it stays $0).
        "disconnect_fee": Decimal("50.00"),
        "reconnect_fee_after_hours": Decimal("150.00"),
        # "will have their service restored same day, up until 10 p.m. Payments received after
        # 10 p.m. will be reconnected the following business day"
        "reconnect_cutoff_time": datetime.time(22, 0),
        # "Members disconnected for non-payment, and remaining off for 7 calendar days, will be
        # required to pay all unpaid balances and a security deposit of $500"
        "long_disconnect_days": 7,
        "long_disconnect_deposit": Decimal("500.00"),
        # "the member's check, together with a processing fee ($20), will be assessed"
        "returned_payment_fee": Decimal("20.00"),
        # "2 returned checks within a 12 month period ... No checks will be accepted ... for a
        # period of 1 year following their latest returned check."
        "check_restriction_returns": 2,
        "check_restriction_window_months": 12,
        "check_restriction_months": 12,
        # "No billing arrangement will be made ... if 2 previous billing arrangements have been
        # broken by the member within a 12 month rolling calendar period."
        "arrangement_broken_limit": 2,
        "arrangement_window_months": 12,
        # "Payments made online are credited immediately."
        "online_payment_posting": OP.IMMEDIATE,
        **POSTPAID_PAYMENT_LIMITS,
    },
    cycles=(
        # The "Due Dates" table: Billing Date / Due Date for each cycle.
        {"code": "cycle-1", "name": "Cycle 1 (billed 7th, due 28th)", "bill_day": 7, "due_day": 28},
        {"code": "cycle-2", "name": "Cycle 2 (billed 14th, due 5th)", "bill_day": 14, "due_day": 5},
        {"code": "cycle-3", "name": "Cycle 3 (billed 24th, due 15th)", "bill_day": 24, "due_day": 15},
        {"code": "broadband", "name": "Broadband (billed 3rd, due 24th)", "bill_day": 3, "due_day": 24},
    ),
)

PRESETS: dict[str, Preset] = {p.name: p for p in (A, B, C, D, E)}


class UnknownPreset(CoopError):
    """A preset name that is not one of A-E."""


def get_presets(names: list[str]) -> list[Preset]:
    """The presets named, in order. Names are case-insensitive; an unknown one is refused with the
    list of known ones."""
    if not names:
        raise UnknownPreset(f"Name at least one preset. Known presets: {', '.join(PRESETS)}.")
    unknown = [n for n in names if n.upper() not in PRESETS]
    if unknown:
        raise UnknownPreset(
            f"Unknown preset{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}. "
            f"Known presets: {', '.join(PRESETS)} (manage.py load_policy_preset --list describes them)."
        )
    return [PRESETS[n.upper()] for n in names]


def merged_values(names: list[str]) -> dict:
    """The Policy settings of the named presets, later names winning over earlier ones."""
    values: dict = {}
    for preset in get_presets(names):
        values.update(preset.values)
    return values


def merged_cycles(names: list[str]) -> list[dict]:
    """The billing cycles of the named presets, by code, later names winning."""
    cycles: dict[str, dict] = {}
    for preset in get_presets(names):
        for cycle in preset.cycles:
            cycles[cycle["code"]] = cycle
    return list(cycles.values())
