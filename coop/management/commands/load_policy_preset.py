"""Load one or more policy presets (docs/POLICIES.md) as a new policy version.

manage.py load_policy_preset --list
manage.py load_policy_preset B C                       # prepaid B with postpaid C, from today
manage.py load_policy_preset D --effective 2026-07-01
"""

import datetime

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from coop import presets, services
from coop.calendar import local_today
from coop.models import BillingCycle


def _date(text) -> datetime.date:
    if isinstance(text, datetime.date):  # call_command(..., effective=date) passes it unparsed
        return text
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--effective must be a date as YYYY-MM-DD (got {text!r}).") from None


class Command(BaseCommand):
    help = (
        "Create a new policy version from presets A-E merged in order (B C: prepaid program B with "
        "postpaid schedule C), and the billing cycles they define. --list describes the presets."
    )

    def add_arguments(self, parser):
        parser.add_argument("names", nargs="*", metavar="NAME", help="Preset names, e.g. B C.")
        parser.add_argument(
            "--effective",
            metavar="YYYY-MM-DD",
            help="First day of the new version (default: today in the cooperative's zone).",
        )
        parser.add_argument("--name", default="", help="Name of the version (default: 'Presets B + C').")
        parser.add_argument("--list", action="store_true", help="Describe the presets and exit.")

    def handle(self, *args, **options):
        names, effective, name = options["names"], options["effective"], options["name"]
        if options["list"]:
            for preset in presets.PRESETS.values():
                self.stdout.write(f"{preset.name}  seeds/{preset.source}\n    {preset.description}")
            return
        if not names:
            raise CommandError(
                f"Name at least one preset ({', '.join(presets.PRESETS)}), or use --list to see them."
            )
        effective_from = _date(effective) if effective else local_today()
        try:
            cycle_specs = presets.merged_cycles(names)
        except presets.UnknownPreset as exc:
            raise CommandError(str(exc)) from None
        existing = {c.code: c for c in BillingCycle.objects.filter(code__in=[s["code"] for s in cycle_specs])}
        try:
            policy = services.policy_load_presets(names=names, effective_from=effective_from, name=name)
        except ValidationError as exc:
            raise CommandError(
                " ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            ) from None
        self.stdout.write(self.style.SUCCESS(f"Created policy version {policy} (id {policy.pk})."))
        for spec in cycle_specs:
            old = existing.get(spec["code"])
            if old is None:
                self.stdout.write(f"Created billing cycle {spec['code']}: {spec['name']}.")
            elif (old.bill_day, old.due_day) != (spec["bill_day"], spec["due_day"]):
                self.stdout.write(
                    self.style.WARNING(
                        f"Kept billing cycle {old.code} as it is (billed {old.bill_day}, due {old.due_day}); "
                        f"the preset says billed {spec['bill_day']}, due {spec['due_day']}. Change it in "
                        "the admin if the preset should win."
                    )
                )
            else:
                self.stdout.write(f"Billing cycle {old.code} already exists.")
