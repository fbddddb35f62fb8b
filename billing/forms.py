"""Forms of the clerk's money actions on an account (billing/admin_views.py).

They only check the shape of the input (an amount of money, a choice from the list, a reason).
Every rule about money (the minimum payment, check restriction, deposit held, the policy's plan
share, who may waive, the payment amount guards) is the service's, and its message is shown on the
form. No free-text field takes a card number (coop/validators.py); the services refuse one again.
"""

import datetime
from decimal import Decimal

from django import forms
from django.utils import timezone

from billing.limits import CONFIRM_FIELD
from billing.models import Payment, ReturnedPayment
from coop.models import FeeScheduleEntry
from coop.validators import no_card_number

CENT = Decimal("0.01")


def money_field(label="Amount", *, required=True, help_text=""):
    return forms.DecimalField(
        label=label,
        required=required,
        max_digits=12,
        decimal_places=2,
        min_value=CENT,
        help_text=help_text,
        # A phone shows its number pad; "0.01" steps let the browser accept cents.
        widget=forms.NumberInput(attrs={"step": "0.01", "min": "0.01", "inputmode": "decimal"}),
    )


def reason_field(label="Reason", *, required=True, help_text="Kept with the posting, for the audit trail."):
    return forms.CharField(
        label=label,
        required=required,
        max_length=250,
        help_text=help_text,
        widget=forms.TextInput(attrs={"size": 50}),
        validators=[no_card_number],
    )


def reference_field(help_text):
    return forms.CharField(max_length=80, help_text=help_text, validators=[no_card_number])


class LocalDateTimeInput(forms.DateTimeInput):
    """A browser date-and-time picker, in the cooperative's time zone."""

    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


class PaymentPostForm(forms.Form):
    amount = money_field()
    tender = forms.ChoiceField(choices=Payment.Tender.choices, initial=Payment.Tender.CASH)
    reference = reference_field(
        "Check number, processor reference, the card's last four digits, or the cash receipt-book "
        "number. Posting the same tender and reference again shows the first receipt; it never posts "
        "twice."
    )
    received_at = forms.DateTimeField(
        label="Received at", widget=LocalDateTimeInput(), help_text="Cooperative time."
    )
    # Shown only once the amount is above the policy's limit for the tender (ask_confirmation).
    confirm_over_limit = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["received_at"].initial = timezone.localtime().replace(second=0, microsecond=0)

    def ask_confirmation(self) -> None:
        """Show the confirmation box: the amount is above the limit for its tender."""
        field = self.fields[CONFIRM_FIELD]
        field.widget = forms.CheckboxInput()
        field.label = "Confirm the amount"
        field.help_text = (
            "The amount is above the policy's limit for this tender. Tick to confirm it is right; "
            "your confirmation is recorded with the payment."
        )

    def clean_reference(self):
        return self.cleaned_data["reference"].strip()

    def clean_received_at(self):
        received_at = self.cleaned_data["received_at"]
        # A few minutes of slack for a clock that runs ahead of the server's.
        if received_at > timezone.now() + datetime.timedelta(minutes=5):
            raise forms.ValidationError("A payment cannot be received in the future.")
        return received_at


class PaymentReturnForm(forms.Form):
    reason = forms.ChoiceField(label="Reason code", choices=ReturnedPayment.Reason.choices)
    note = reason_field("Note", required=False, help_text="The bank's return code or what the member said.")
    returned_on = forms.DateField(
        label="Returned on",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="The day the bank or processor returned it.",
    )

    def __init__(self, *args, received_on: datetime.date | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["returned_on"].initial = timezone.localdate()
        self.received_on = received_on

    def clean_returned_on(self):
        returned_on = self.cleaned_data["returned_on"]
        if returned_on > timezone.localdate():
            raise forms.ValidationError("A payment cannot be returned in the future.")
        if self.received_on and returned_on < self.received_on:
            raise forms.ValidationError(
                f"The payment was received on {self.received_on:%B %-d, %Y}; it cannot be returned before."
            )
        return returned_on


class FeeChargeForm(forms.Form):
    fee = forms.ModelChoiceField(
        queryset=FeeScheduleEntry.objects.filter(is_active=True).order_by("description"),
        empty_label="— choose a fee —",
        help_text="Fees of the fee schedule in force, at the schedule's amount.",
    )


class FeeWaiveForm(forms.Form):
    reason = reason_field(help_text="Why the fee is waived; kept with the waiver.")


class DepositCollectForm(forms.Form):
    amount = money_field(help_text="Defaults to what the policy requires less what is already held.")
    tender = forms.ChoiceField(choices=Payment.Tender.choices, initial=Payment.Tender.CASH)
    reference = reference_field("Check number, processor reference or cash receipt-book number.")


class DepositApplyForm(forms.Form):
    amount = money_field(required=False, help_text="Leave blank to apply all of the deposit held.")
    reason = reason_field(help_text="For example: converted to prepaid, or final bill.")


class DepositRefundForm(forms.Form):
    amount = money_field(
        required=False,
        help_text="Leave blank to refund all of the deposit held. It goes to refunds payable; "
        "a manager pays it out.",
    )
    reason = reason_field(help_text="For example: account closed, or a year of payments on time.")


class PlanEnrollForm(forms.Form):
    share_percent = forms.DecimalField(
        label="Share of each payment (%)",
        max_digits=5,
        decimal_places=2,
        min_value=CENT,
        max_value=Decimal("100"),
        widget=forms.NumberInput(attrs={"step": "0.01", "inputmode": "decimal"}),
    )
    override_reason = reason_field(
        "Reason for a different share",
        required=False,
        help_text="Needed only when the share differs from the policy's.",
    )


class PlanCancelForm(forms.Form):
    reason = reason_field(help_text="Why the plan ends; kept with the plan.")


class AdjustmentForm(forms.Form):
    CREDIT, DEBIT = "credit", "debit"
    direction = forms.ChoiceField(
        choices=[
            (CREDIT, "Credit — in the member's favour"),
            (DEBIT, "Debit — the member owes more"),
        ],
        widget=forms.RadioSelect,
    )
    amount = money_field()
    reason = reason_field()

    def signed_amount(self) -> Decimal:
        amount = self.cleaned_data["amount"]
        return amount if self.cleaned_data["direction"] == self.CREDIT else -amount


class WriteOffForm(forms.Form):
    amount = money_field(required=False, help_text="Leave blank to write off all of the arrears.")
    reason = reason_field(help_text="Why the debt cannot be collected.")
